"""deploy/ checked against the code: settings, commands, search attributes, metrics."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from govflow.cli import build_parser
from govflow.workers.settings import setting_names
from govflow.workers.temporal import search_attribute_types
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import RunInput, RunResult
from tests.conftest import free_port
from tests.helpers import eventually
from tests.integration.test_governed_run_e2e import cli_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEXT_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
RULES = DEPLOY / "prometheus" / "govflow-rules.yaml"
DASHBOARD = DEPLOY / "grafana" / "govflow-dashboard.json"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def _containers() -> list[dict[str, Any]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec", {})
            template = spec.get("template", {}).get("spec", {})
            out += template.get("containers", [])
    return out


def test_every_govflow_variable_deploy_sets_is_a_setting() -> None:
    used = {m for p in TEXT_FILES for m in re.findall(r"GOVFLOW_[A-Z0-9_]+", p.read_text())}
    assert used, "deploy/ names no GOVFLOW_ variable"
    assert used <= setting_names() | {"GOVFLOW_APP"}, sorted(used - setting_names())
    # Each container's env (ConfigMap and Secret references included) passes the settings' own checks.
    config = yaml.safe_load((DEPLOY / "k8s" / "worker-config.yaml").read_text())["data"]
    assert set(config) <= setting_names()
    for container in _containers():
        names = {e["name"] for e in container.get("env", [])}
        assert names <= setting_names(), names - setting_names()


def _image_argv() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    return [*entrypoint, *cmd]


def test_the_image_and_the_manifests_run_real_govflow_commands() -> None:
    argv = _image_argv()
    assert argv[0] == "govflow"
    commands = [argv[1:]] + [c["args"] for c in _containers()]
    guide = (DEPLOY / "README.md").read_text()
    blocks = "".join(re.findall(r"```sh\n(.*?)```", guide, re.S))
    commands += [shlex.split(line)[1:] for line in re.findall(r"^(govflow .+)$", blocks, re.M)]
    assert len(commands) >= 4
    parser = build_parser()
    for args in commands:
        parsed = parser.parse_args(args)  # exits (fails the test) on a command govflow does not have
        assert callable(parsed.func), args
    # Every container runs the image whose entrypoint is `govflow`.
    assert {c["image"].split(":")[0] for c in _containers()} == {"govflow-worker"}


def test_the_search_attributes_the_guide_registers_are_the_codes() -> None:
    code = {name: value for name, value in search_attribute_types().items()}
    names = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime", 7: "KeywordList"}
    wanted = {name: names[int(v)] for name, v in code.items()}
    guide = (DEPLOY / "README.md").read_text()
    table = dict(re.findall(r"^\| `(Govflow\w+)` \| (\w+) \|$", guide, re.M))
    cli = dict(re.findall(r"--name (Govflow\w+) --type (\w+)", guide))
    cloud = dict(re.findall(r"--search-attribute (Govflow\w+)=(\w+)", guide))
    assert table == wanted
    assert cli == wanted
    assert cloud == wanted


def test_the_manifests_hang_together() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (DEPLOY / "k8s" / entry.split("=", 1)[1]).resolve().is_file(), entry
    config = yaml.safe_load((DEPLOY / "k8s" / "worker-config.yaml").read_text())["data"]
    (worker,) = [c for c in _containers() if c["name"] == "worker"]
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert config["GOVFLOW_POLICY_DIR"] in mounts
    ports = {p["containerPort"] for p in worker["ports"]}
    assert {int(config["GOVFLOW_METRICS_PORT"]), int(config["GOVFLOW_SDK_METRICS_PORT"])} == ports


def metric_names_used() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return {m for e in exprs for m in re.findall(r"\b((?:govflow|temporal)_[a-z0-9_]+)", e)}


def _exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.devserver
async def test_every_metric_the_rules_and_dashboard_use_is_served_by_a_running_worker(
    dev_server_env: WorkflowEnvironment, database_url: str, sor_url: str, tmp_path: Path
) -> None:
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(ROOT / "policies" / "examples" / "support-triage.yaml", policies)
    port, sdk_port = free_port(), free_port()
    environ = cli_env(
        env, database_url, task_queue,
        GOVFLOW_APP="tests.integration.example_app:build", GOVFLOW_POLICY_DIR=str(policies),
        GOVFLOW_METRICS_PORT=str(port), GOVFLOW_SDK_METRICS_PORT=str(sdk_port), SOR_URL=sor_url,
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", "worker", env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert b"polling task queue" in line, line
        # One run that works (shadow), one refused at its first read (an apac contact), and one of a
        # version this worker does not have, whose first activity fails: the SDK exports its latency and
        # failure series only once something happened.
        results = []
        for ticket in ("T0001", "T0004"):
            results.append(
                await env.client.execute_workflow(
                    GovernedRunWorkflow.run,
                    RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya"),
                    id=f"run-{uuid.uuid4()}",
                    task_queue=task_queue,
                    result_type=RunResult,
                )
            )
        assert [r.outcome for r in results] == ["shadowed", "refused"]
        unknown = RunInput(task="support-triage", task_version="9", item_key="T0001", item={"ticket_id": "T0001"},
                           requester="priya")  # fmt: skip
        # Offered back to the queue for a worker that has it (there is none): one failed attempt is enough.
        handle = await env.client.start_workflow(
            GovernedRunWorkflow.run, unknown, id=f"run-{uuid.uuid4()}", task_queue=task_queue
        )

        async def attempts() -> int:
            pending = (await handle.describe()).raw_description.pending_activities
            return max((a.attempt for a in pending), default=0)

        await eventually(attempts, lambda n: n >= 2, tries=200)
        await handle.terminate("test over")
        exposed = _exposed(await asyncio.to_thread(_scrape, port)) | _exposed(
            await asyncio.to_thread(_scrape, sdk_port)
        )
    finally:
        proc.terminate()
        await proc.wait()
    used = metric_names_used()
    assert {n for n in used if n.startswith("govflow_")}
    assert {n for n in used if n.startswith("temporal_")}
    assert used <= exposed, sorted(used - exposed)
    assert "govflow_scope_refusals_total" in exposed
