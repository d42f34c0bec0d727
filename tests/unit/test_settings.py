from __future__ import annotations

import json
from pathlib import Path

import pytest

from govflow.workers.settings import SettingsError, load_settings


def test_defaults_point_at_the_local_stack() -> None:
    s = load_settings({})
    assert s.embedded_temporal
    assert s.embedded_database
    assert s.target_temporal_address == "127.0.0.1:7233"
    assert s.ui_url == "http://127.0.0.1:8233"
    assert s.task_queue == "govflow"


def test_a_remote_cluster_and_database_start_nothing_embedded() -> None:
    s = load_settings(
        {
            "GOVFLOW_TEMPORAL_ADDRESS": "acme.a1b2c.tmprl.cloud:7233",
            "GOVFLOW_TEMPORAL_NAMESPACE": "acme.a1b2c",
            "GOVFLOW_TEMPORAL_API_KEY": "secret",
            "GOVFLOW_DATABASE_URL": "postgresql://govflow@db.internal/govflow",
        }
    )
    assert not s.embedded_temporal
    assert not s.embedded_database
    assert s.ui_url is None
    assert "secret" not in repr(s)


def test_a_misspelt_variable_is_named() -> None:
    with pytest.raises(
        SettingsError,
        match=r"unknown setting GOVFLOW_TASKQUEUE \(did you mean GOVFLOW_TASK_QUEUE\?\); govflow reads: ",
    ):
        load_settings({"GOVFLOW_TASKQUEUE": "x"})
    with pytest.raises(SettingsError, match=r"GOVFLOW_TEMPORAL_UI \(did you mean GOVFLOW_TEMPORAL_UI_URL\?\)"):
        load_settings({"GOVFLOW_TEMPORAL_UI": "http://ui.internal"})


def test_a_variable_that_is_not_a_setting_is_left_alone() -> None:
    """A policy's secret lives where the policy says, under any name (README, docs/webhooks.md)."""
    s = load_settings({"GOVFLOW_LEADS_HOOK_SECRET": "whsec-1", "GOVFLOW_TASK_QUEUE": "q"})
    assert s.task_queue == "q"


def test_an_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="GOVFLOW_TEMPORAL_PORT: Input should be less than or equal to 65535"):
        load_settings({"GOVFLOW_TEMPORAL_PORT": "70000"})


def test_a_tls_cert_without_its_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="TLS_CERT and GOVFLOW_TEMPORAL_TLS_KEY go together"):
        load_settings({"GOVFLOW_TEMPORAL_TLS_CERT": "/etc/cert.pem"})


def test_postgres_errors_are_transient_exactly_by_sqlstate_class() -> None:
    """A restarting server (57P01, 57P03), a lost connection (08xxx), overload (53xxx) and
    serialization failures retry; integrity (23xxx) and syntax/access (42xxx) do not."""
    import asyncpg

    from govflow.activities.pgerrors import is_transient

    transient = [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.SerializationError("could not serialize"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        ConnectionRefusedError(111, "refused"),
    ]
    permanent = [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedColumnError("no such column"),
        asyncpg.exceptions.InsufficientPrivilegeError("append-only"),
        ValueError("not a database error"),
    ]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in permanent] == [False] * len(permanent)


def test_a_deployment_and_its_build_go_together() -> None:
    s = load_settings({"GOVFLOW_DEPLOYMENT_NAME": "govflow", "GOVFLOW_BUILD_ID": "2026-12-06.1"})
    assert (s.deployment_name, s.build_id) == ("govflow", "2026-12-06.1")
    with pytest.raises(SettingsError, match="GOVFLOW_DEPLOYMENT_NAME and GOVFLOW_BUILD_ID go together"):
        load_settings({"GOVFLOW_BUILD_ID": "2026-12-06.1"})


def _stack_at(home: Path, **recorded: object) -> None:
    home.mkdir(parents=True)
    (home / "stack.json").write_text(json.dumps({"database_url": "postgresql:///govflow", "settings": recorded}))


def test_a_command_run_from_any_folder_finds_the_stack_and_its_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state)}
    project, elsewhere = tmp_path / "govflow-checkout", tmp_path / "acme_leads" / "src"
    elsewhere.mkdir(parents=True)
    _stack_at(project / ".govflow", temporal_port=7399, temporal_ui_port=8399, console_port=8399)
    # From a folder inside the project: the nearest .govflow/ up the tree, with the ports it was started on.
    (project / "docs").mkdir()
    monkeypatch.chdir(project / "docs")
    inside = load_settings(env)
    assert inside.home == project / ".govflow"
    assert inside.target_temporal_address == "127.0.0.1:7399"
    assert inside.console_url == "http://localhost:8399"
    # From a package of the engineer's own, outside it: nothing up the tree, so the stack noted last.
    monkeypatch.chdir(elsewhere)
    assert load_settings(env).home == elsewhere / ".govflow"  # nothing noted yet: here, as before
    (state / "govflow").mkdir(parents=True)
    (state / "govflow" / "stack").write_text(f"{project / '.govflow'}\n")
    found = load_settings(env)
    assert found.home == project / ".govflow"
    assert found.temporal_port == 7399
    # What the environment sets wins over what the stack recorded.
    assert load_settings({**env, "GOVFLOW_TEMPORAL_PORT": "7500"}).temporal_port == 7500
    assert load_settings({**env, "GOVFLOW_HOME": str(tmp_path / "mine")}).temporal_port == 7233
    # A note of a stack since removed is not followed.
    (project / ".govflow" / "stack.json").unlink()
    assert load_settings(env).home == elsewhere / ".govflow"


def test_a_worker_on_a_queue_of_its_own_is_a_version_of_that_queues_local_deployment() -> None:
    from govflow.workers.deployments import local_deployment, worker_version

    assert local_deployment("govflow") == "govflow-local"
    assert local_deployment("acme-leads") == "govflow-local-acme-leads"
    assert local_deployment("team a/leads.v2") == "govflow-local-team-a-leads-v2"
    version, current = worker_version(load_settings({"GOVFLOW_TASK_QUEUE": "acme-leads"}))
    assert version is not None
    assert (version.deployment_name, current) == ("govflow-local-acme-leads", True)
