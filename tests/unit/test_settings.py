from __future__ import annotations

import pytest

from workers.settings import SettingsError, load_settings


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
        match=r"unknown setting GOVFLOW_TASKQUEUE; govflow reads: .*GOVFLOW_TASK_QUEUE",
    ):
        load_settings({"GOVFLOW_TASKQUEUE": "x"})


def test_an_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="GOVFLOW_TEMPORAL_PORT: Input should be less than or equal to 65535"):
        load_settings({"GOVFLOW_TEMPORAL_PORT": "70000"})


def test_a_tls_cert_without_its_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="TLS_CERT and GOVFLOW_TEMPORAL_TLS_KEY go together"):
        load_settings({"GOVFLOW_TEMPORAL_TLS_CERT": "/etc/cert.pem"})
