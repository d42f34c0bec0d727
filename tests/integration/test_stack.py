"""`govflow stack up | status | down` as a user runs them, in a temporary folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from govflow.stack.local import LocalStack, StackError, StackInfo
from govflow.workers.settings import load_settings
from tests.conftest import free_port


def _env(home: Path, temporal_port: int, ui_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(
        GOVFLOW_HOME=str(home),
        GOVFLOW_TEMPORAL_PORT=str(temporal_port),
        GOVFLOW_TEMPORAL_UI_PORT=str(ui_port),
        GOVFLOW_CONSOLE_PORT=str(free_port()),
    )
    return env


def _govflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _processes_under(folder: Path) -> list[str]:
    """Live (not zombie) processes whose command line mentions ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_stack_up_status_down_twice_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "state"
    env = _env(home, free_port(), free_port())
    for _round in range(2):
        up = _govflow(env, "stack", "up")
        assert up.returncode == 0, up.stderr
        assert f"127.0.0.1:{env['GOVFLOW_TEMPORAL_PORT']}" in up.stdout
        assert f"http://127.0.0.1:{env['GOVFLOW_TEMPORAL_UI_PORT']}" in up.stdout
        assert "postgresql://" in up.stdout
        assert f"Console    http://localhost:{env['GOVFLOW_CONSOLE_PORT']}" in up.stdout

        again = _govflow(env, "stack", "up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout

        status = _govflow(env, "stack", "status")
        assert status.returncode == 0, status.stderr
        assert "temporal  running" in status.stdout
        assert "postgres  running" in status.stdout
        assert "console   running" in status.stdout
        # From a folder of one's own, nothing set: the stack (home and ports) is found all the same.
        bare = {k: v for k, v in env.items() if not k.startswith("GOVFLOW_")}
        found = subprocess.run([sys.executable, "-m", "govflow", "stack", "status"], env=bare, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert (
            f"running (pid {json.loads((home / 'stack.json').read_text())['temporal']['pid']}) at 127.0.0.1:"
            f"{env['GOVFLOW_TEMPORAL_PORT']}" in found.stdout
        ), found.stdout + found.stderr

        down = _govflow(env, "stack", "down")
        assert down.returncode == 0, down.stderr
        assert "Temporal dev server" in down.stdout
        assert "Postgres" in down.stdout
        assert _processes_under(home) == []

        status = _govflow(env, "stack", "status")
        assert "temporal  stopped" in status.stdout
        assert "postgres  stopped" in status.stdout
        assert "console   stopped" in status.stdout
        assert not (Path(os.environ["XDG_STATE_HOME"]) / "govflow" / "stack").exists()  # its note goes with it


def test_a_taken_port_gets_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        env = _env(tmp_path / "state", taken, free_port())
        up = _govflow(env, "stack", "up")
    assert up.returncode == 1
    assert "Traceback" not in up.stderr
    assert up.stderr.strip().splitlines() == [
        f"govflow: error: port {taken} (for Temporal) is already in use by another process: "
        f"stop it, or choose another port with GOVFLOW_TEMPORAL_PORT=<port>"
    ]
    assert _processes_under(tmp_path) == []


def test_a_stale_pid_file_is_noticed_and_replaced(tmp_path: Path) -> None:
    home = tmp_path / "state"
    home.mkdir()
    # A pid that surely is not a Temporal server of ours: a process that already exited.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (home / "stack.json").write_text(json.dumps({"temporal": {"pid": gone.pid}}))
    env = _env(home, free_port(), free_port())
    try:
        up = _govflow(env, "stack", "up")
        assert up.returncode == 0, up.stderr
        assert f"removed a stale Temporal pid file (pid {gone.pid} is not running)" in up.stdout
    finally:
        down = _govflow(env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert _processes_under(home) == []


def test_a_missing_temporal_binary_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("govflow.stack.local.bin_path", lambda name: None)
    settings = load_settings(
        {"GOVFLOW_HOME": str(tmp_path), "GOVFLOW_TEMPORAL_PORT": str(free_port()),
         "GOVFLOW_TEMPORAL_UI_PORT": str(free_port())}
    )  # fmt: skip
    with pytest.raises(StackError, match=r"the Temporal CLI is not installed: run `make install`"):
        LocalStack(settings)._start_temporal(StackInfo("", "", None, ""))
