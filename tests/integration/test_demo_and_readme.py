"""`govflow demo` (what `make demo` runs) on a fresh local stack, then the README's commands against it."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from govflow.activities.connectors import with_database
from govflow.cli import build_parser
from govflow.demos.triage import QUERIES
from tests.conftest import free_port
from tests.integration.quickstart import quickstart_commands, run_quickstart

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# README commands this test runs after the demo (they read, or only pause what is paused).
RUNS = (
    "policy", "stack status", "runs", "evidence", "rollout status", "rollout pause", "approvals list", "temporal setup",
    "db migrate", "approvals grants", "reviewers enroll", "reviewers list", "report",
)  # fmt: skip
# The rest change state a later command depends on, or never return; each still has to parse.
PARSES_ONLY = (
    "worker", "run submit", "approve", "reject", "rollout start", "rollout resume", "rollout promote",
    "rollout rollback", "stack up", "stack down", "demo", "approvals grant", "approvals revoke", "deployments",
    "console", "reviewers revoke",
)  # fmt: skip


def readme_commands() -> list[list[str]]:
    """Every `.venv/bin/govflow ...` line in the README's sh blocks, as argv (continuations joined)."""
    text = README.read_text()
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", text, re.S)).replace("\\\n", " ")
    out = []
    for line in blocks.splitlines():
        line = line.strip()
        if line.startswith(".venv/bin/govflow "):
            argv = shlex.split(line.split(" &")[0], comments=True)
            out.append(argv[1:])
    return out


async def _fetch(url: str, query: str) -> list[object]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch(query)]
    finally:
        await conn.close()


def _kind(args: list[str]) -> str:
    for n in (2, 1):
        if " ".join(args[:n]) in RUNS + PARSES_ONLY:
            return " ".join(args[:n])
    raise AssertionError(f"README command not classified for this test: govflow {' '.join(args)}")


def test_every_readme_command_is_a_real_command() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    parser = build_parser()
    for args in commands:
        _kind(args)
        assert callable(parser.parse_args([a.replace("RUN_ID", "r") for a in args]).func)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(
        GOVFLOW_HOME=str(home),
        GOVFLOW_TEMPORAL_PORT=str(free_port()),
        GOVFLOW_TEMPORAL_UI_PORT=str(free_port()),
        GOVFLOW_CONSOLE_PORT=str(free_port()),
        GOVFLOW_METRICS_PORT=str(free_port()),
        GOVFLOW_SDK_METRICS_PORT=str(free_port()),
    )
    return env


def _govflow(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govflow", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


async def _check_stack(env: dict[str, str], database_url: str, rollout: str) -> None:
    client = await Client.connect(f"127.0.0.1:{env['GOVFLOW_TEMPORAL_PORT']}")
    for label, query in QUERIES.items():
        found = [wf.id async for wf in client.list_workflows(query)]
        if label == "the paused rollout":
            assert found == [rollout], (label, found)
        elif label == "live canary runs":
            assert found, label
    conn = await asyncpg.connect(database_url)
    try:
        shadow_votes = await conn.fetchval(
            "SELECT count(*) FROM approval_attempts a JOIN runs r USING (run_id) WHERE r.mode = 'shadow'"
        )
        live_votes = await conn.fetchval("SELECT count(*) FROM approval_attempts WHERE accepted")
    finally:
        await conn.close()
    assert shadow_votes == 0  # nothing in a shadow run is approved
    assert live_votes > 0


@pytest.mark.devserver
def test_the_demo_then_the_readme_commands(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    env = _env(tmp_path / "home")
    try:
        started = time.monotonic()
        demo = _govflow(env, "demo", "--auto-approve-as", "alice,bob", timeout=180)
        took = time.monotonic() - started
        assert demo.returncode == 0, demo.stdout + demo.stderr
        out = demo.stdout
        print(f"govflow demo took {took:.1f} s")
        assert "gate passed: promoted to canary" in out
        assert "PAUSED at stage canary: pass-rate breached" in out
        assert "live writes leased after the pause: 0" in out
        assert re.search(r"live +published +\d+", out)
        assert re.search(r"shadow +shadowed +\d+", out)
        assert re.search(r"approval attempts in the evidence: alice \d+ accepted", out)
        assert "Traceback" not in demo.stderr
        # The console's address, and a link for each support lead that opens their enrollment page there.
        links = dict(re.findall(r"^ +(\w+) +(http://localhost:\d+/enroll/\S+)$", out, re.MULTILINE))
        assert sorted(links) == ["alice", "bob", "chen"], out
        with urllib.request.urlopen(links["bob"], timeout=10) as page:
            assert "Enroll a passkey for bob" in page.read().decode()
        database_url = re.search(r"Database +(\S+)", out).group(1)  # type: ignore[union-attr]
        run_id = re.search(r"evidence show (run-\S+)", out).group(1)  # type: ignore[union-attr]
        rollout = "rollout-support-triage-vdemo"
        asyncio.run(_check_stack(env, database_url, rollout))
        status = _govflow(env, "stack", "status").stdout
        assert "running" in status.split("worker")[1].split("\n")[0]
        assert "running" in status.split("console")[1].split("\n")[0]
        # On the local stack the demo's worker is a version of govflow-local, at its code's build, and current.
        deployments = _govflow(env, "deployments")
        assert deployments.returncode == 0, deployments.stderr
        assert re.search(r"build code-[0-9a-f]{12} +current", deployments.stdout), deployments.stdout

        ran = []
        for args in readme_commands():
            if _kind(args) not in RUNS:
                continue
            args = [a.replace("RUN_ID", run_id).replace("ROLLOUT_ID", rollout) for a in args]
            args = [p for a in args for p in (sorted(str(x) for x in ROOT.glob(a)) if "*" in a else [a])]  # as sh does
            if args[:2] == ["evidence", "export"]:
                args += ["--out", str(tmp_path / "export")]
            result = _govflow(env, *args)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            ran.append(args)
        assert {" ".join(a[:2]) for a in ran} >= {"evidence show", "evidence verify", "evidence export", "runs show"}
        report = next((tmp_path / "export").glob("*.md")).read_text()
        assert "chain: **verifies**" in report or "rollout chain: **verifies**" in report

        # The finance variant (make demo-finance) on the same stack.
        started = time.monotonic()
        demo = _govflow(env, "demo", "--task", "invoice-matching", "--auto-approve-as", "dana,erik", timeout=180)
        took = time.monotonic() - started
        assert demo.returncode == 0, demo.stdout + demo.stderr
        print(f"govflow demo --task invoice-matching took {took:.1f} s")
        out = demo.stdout
        for line in (
            "gate passed: promoted to pilot",
            "dana signs an approval: refused (dana may not approve under rule large-payment: "
            "purchase_order.requested_by is dana (separation of duties))",
            "erik signs an approval with his passkey, in the reviewer console: Accepted by the run: erik approved "
            "under rule large-payment",
            "farah signs an approval with her key file: accepted (farah approved under rule large-payment)",
            "above a finance approver's 50,000 limit: it goes to farah, hana (controllers, 2 signed approvals)",
            "erik signs an approval: refused (erik may not approve this under rule large-payment: may approve up "
            "to 50,000.00 EUR; this is 64,800.00 EUR)",
            "hana signs an approval: accepted (hana approved under rule large-payment)",
            "scheduled only after the second signed approval",
            "refused: schedule-payment: record is outside grant payments: its vendor_id is 'V011'",
            "waits on the exception route: incomplete_input: nothing has been received",
            "farah signs 'retry' (warehouse posted GR-PO-R002-late): accepted",
            "-> INV-R002 live published; INV-D001 exception (discarded)",
            "PAUSED at stage pilot: pass-rate breached",
            "live payments leased after the pause: 0",
        ):
            assert line in out, (line, out)
        assert "Traceback" not in demo.stderr
        # The summary's approvals are the approvals report's, read from the evidence.
        command = re.search(r"\(govflow (report approvals --task invoice-matching --since \S+)\):", out)
        assert command is not None, out
        report = _govflow(env, *command.group(1).split())
        assert report.returncode == 0, report.stderr
        totals = report.stdout.splitlines()[1:]
        assert len(totals) >= 4, report.stdout
        assert all(f"  {line}" in out for line in totals), (totals, out)
        # erik's passkey signature is in the evidence, and verify re-checks it.
        paid = re.search(r"evidence: \.venv/bin/govflow evidence show (\S+)", out).group(1)  # type: ignore[union-attr]
        shown = _govflow(env, "evidence", "show", paid)
        erik = r"erik voted approve on schedule-payment via console session \w+, signed by passkey: accepted"
        assert re.search(erik, shown.stdout), shown.stdout
        verified = _govflow(env, "evidence", "verify", paid)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        status = _govflow(env, "stack", "status").stdout
        assert "running" in status.split("worker")[1].split("\n")[0]
        assert "running" in status.split("console")[1].split("\n")[0]

        # An engineer's own task, from a folder outside the project, beside the demo's worker (writing-a-task.md).
        own = tmp_path_factory.mktemp("engineer")
        assert not own.is_relative_to(ROOT)
        assert not any(own.iterdir())
        said = run_quickstart(own)
        checked = said["govflow policy check --app acme_leads.app:build"]
        assert "task acme-leads v1: " in checked, checked
        assert checked.rstrip().endswith(": ok"), checked
        assert "rule enterprise-lead: 0/1 approved" in said["govflow approvals list --as alice"]
        shown = next(text for line, text in said.items() if line.startswith("govflow runs show"))
        assert "outcome published" in shown, shown
        assert "written" in shown, shown
        assert "warning" not in said["background"], said["background"]
        # A version of its queue's own deployment: it makes itself current there, never on the demo's queue.
        assert "polling task queue 'acme-leads' as govflow-local-acme-leads build code-" in said["background"]
        assert "Traceback" not in said["background"], said["background"]
        segment = "SELECT segment FROM lead WHERE id = 'L0001'"
        assert asyncio.run(_fetch(with_database(database_url, "acme_leads"), segment)) == ["enterprise"]
        # The package's README gives the same commands (less making it and going in).
        readme = (own / "acme_leads" / "README.md").read_text()
        commands = re.search(r"```sh\n(.*?)```", readme, re.S)
        assert commands is not None
        assert commands.group(1).splitlines() == quickstart_commands()[2:]
        status = _govflow(env, "stack", "status").stdout
        assert "running" in status.split("worker")[1].split("\n")[0]  # the demo's worker served on, beside it
    finally:
        down = _govflow(env, "stack", "down")
        assert down.returncode == 0, down.stderr


def test_every_image_the_readme_shows_exists() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert images, "the reviewer's guide shows the console"
    for image in images:
        assert (ROOT / image).is_file(), f"README shows {image}, which is not there"
