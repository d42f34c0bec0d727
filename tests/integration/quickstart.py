"""docs/writing-a-task.md's quick start, run as written from a folder outside the project.

Each line of the guide's block runs in a shell (``cd`` and ``export`` carry to the next line, as in the
reader's shell; a line ending in `` &`` runs in the background); ``RUN_ID`` is the id `run submit` printed.
No GOVFLOW_* variable is set beyond the guide's own: the commands find the stack themselves.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-task.md"


def quickstart_commands() -> list[str]:
    section = DOC.read_text().split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the quick start has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    venv = Path(sys.executable).parent
    env["PATH"] = f"{venv}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv.parent)
    return env


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while text not in (path.read_text() if path.exists() else ""):
        assert proc.poll() is None, f"the background command stopped: {path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {within} s: {path.read_text()}"
        time.sleep(0.2)


def run_quickstart(folder: Path) -> dict[str, str]:
    """Run the guide's lines in ``folder`` (empty, outside the project); each line's output, by line."""
    cwd, env, out = folder, _shell_env(), {}
    background: list[subprocess.Popen[bytes]] = []
    run_id = ""
    try:
        for line in quickstart_commands():
            line = line.replace("RUN_ID", run_id)
            if line.startswith("cd "):
                cwd = cwd / line[3:]
            elif line.startswith("export "):
                env.update(pair.split("=", 1) for pair in shlex.split(line[len("export ") :]))
            elif line.endswith(" &"):
                log = folder / "background.log"
                with log.open("ab") as sink:
                    background.append(subprocess.Popen(line[:-2], shell=True, cwd=cwd, env=env, stdout=sink,
                                                       stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
                _wait_for(log, "polling task queue", background[-1])
            else:
                if line.startswith("govflow runs show"):  # the approval's write is under way: wait for its end
                    _until_finished(line, cwd, env)
                done = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
                assert done.returncode == 0, (line, done.stdout, done.stderr)
                out[line] = done.stdout
                if line.startswith("govflow run submit"):
                    run_id = re.search(r"submitted (\S+)", done.stdout).group(1)  # type: ignore[union-attr]
        out["background"] = (folder / "background.log").read_text()
        return out
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "acme_leads"], capture_output=True,
                       timeout=120)  # fmt: skip


def _until_finished(line: str, cwd: Path, env: dict[str, str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        shown = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        if "phase finished" in shown.stdout:
            return
        time.sleep(0.5)
    raise AssertionError(f"{line}: the run did not finish within {within} s")
