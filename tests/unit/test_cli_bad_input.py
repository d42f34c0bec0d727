"""The CLI's answers to bad input: a clear message and an exit code, never a traceback.

| invocation | exit | says |
|---|---|---|
| `runs list --task "x' OR 1=1"` | 1 | not a task name |
| `policy check` on a non-UTF-8 file | 1 | not UTF-8 text, with byte and line |
| `policy check` on YAML with aliases | 1 | aliases are not allowed, with the line |
| `policy check` on a missing file | 1 | cannot read |
| `keys new FILE` onto an existing file | 1 | exists; refusing to overwrite a key |
| `evidence checkpoint --key` a corrupt key file | 1 | expected a PEM Ed25519 key or base64 of 32 raw bytes |
| `evidence verify` with no id and no checkpoint | 1 | name a RUN_ID ... or give --checkpoint FILE |
| `evidence verify --checkpoint FILE` without a trusted key | 1 | needs --public-key |
| `evidence verify --checkpoint FILE --public-key nope` | 1 | neither base64 of a 32-byte key nor a readable file |
| `run submit` of a task no worker serves (dev server, e2e test) | 1 | no worker task ...; it waits for one |
| output piped into a reader that stops early | 0 | nothing (no BrokenPipeError) |
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from govflow.cli import escape_controls

EXAMPLES = Path(__file__).parents[2] / "policies" / "examples"


def govflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "govflow", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("version: 1\nname: caf\xe9\n".encode("latin-1"))
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("a: &a [x]\nb: *a\n")
    existing = tmp_path / "existing.pem"
    existing.write_text("keep me\n")
    corrupt = tmp_path / "corrupt.pem"
    corrupt.write_text("not a key\n")
    return {
        "latin": latin, "aliases": aliases, "missing": tmp_path / "nope.yaml", "existing": existing,
        "corrupt": corrupt, "out": tmp_path / "checkpoint.json",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "list", "--task", "x' OR 1=1"], "is not a task name"),
        (["policy", "check", "{latin}"], "not UTF-8 text: byte 0xe9 at line 2"),
        (["policy", "check", "{aliases}"], "line 2: YAML aliases (*name) are not allowed"),
        (["policy", "check", "{missing}"], "cannot read"),
        (["keys", "new", "{existing}"], "exists; refusing to overwrite a key"),
        (["evidence", "checkpoint", "--key", "{corrupt}", "--out", "{out}"], "expected a PEM Ed25519 key"),
        (["evidence", "verify"], "name a RUN_ID"),
        (["evidence", "verify", "--checkpoint", "{missing}"], "needs --public-key"),
        (["evidence", "verify", "--checkpoint", "{missing}", "--public-key", "nope"], "nor a readable file"),
    ],
)
def test_bad_input_gets_a_message_and_no_traceback(files: dict[str, Path], argv: list[str], message: str) -> None:
    done = govflow(*[a.format(**files) for a in argv])
    assert done.returncode == 1, done
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_output_piped_into_a_reader_that_stops_early_ends_quietly() -> None:
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run(
        # 3,000 files: ~150 kB of output, more than a pipe holds, so the writer does meet the closed pipe.
        [sys.executable, "-m", "govflow", "policy", "check", *[str(EXAMPLES / "support-triage.yaml")] * 3000],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=10)
    assert writer.returncode == 0
    assert "Traceback" not in writer.stderr
    assert "BrokenPipeError" not in writer.stderr


def test_control_characters_from_evidence_are_shown_not_obeyed() -> None:
    name = "\x1b[32mbob\x1b[0m accepted\x00\u202e"
    shown = escape_controls(name)
    assert shown == "\\x1b[32mbob\\x1b[0m accepted\\x00\\u202e"
    assert escape_controls("line one\n\tline two") == "line one\n\tline two"


@pytest.mark.parametrize(
    ("app", "says"),
    [
        ("govflow.examples.support_triage:SupportTriage", "SupportTriage is a class; name a Registry, or a function"),
        ("acme_leads.app:build", "Install your package into this environment (`.venv/bin/pip install -e"),
        ("govflow.examples.support_triage:connectors", "connectors must take (settings, database_url) and return"),
        ("govflow.examples.support_triage:seed", "seed is async; make it a plain function returning a Registry"),
    ],
)
def test_a_worker_pointed_at_something_that_is_not_an_app_says_what_to_do(app: str, says: str) -> None:
    env = {**os.environ, "GOVFLOW_DATABASE_URL": "postgresql://nobody@/not-used", "GOVFLOW_APP": ""}
    done = subprocess.run([sys.executable, "-m", "govflow", "worker", "--app", app], capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("variable", ["GOVFLOW_METRICS_PORT", "GOVFLOW_SDK_METRICS_PORT"])
def test_a_second_worker_on_the_same_metrics_port_says_how_to_give_it_its_own(variable: str) -> None:
    with socket.socket() as held:  # what the first worker on this machine holds
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        env = {**os.environ, "GOVFLOW_DATABASE_URL": "postgresql://nobody@/not-used", "GOVFLOW_METRICS_PORT": "0",
               "GOVFLOW_SDK_METRICS_PORT": "0", variable: port}  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "govflow", "worker"], capture_output=True, text=True,
                              timeout=60, env=env)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} ({variable}) is in use" in done.stderr, done.stderr
    assert f"{variable}=<free port>" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
