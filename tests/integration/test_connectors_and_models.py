"""Connectors and model clients against real servers: Postgres, and local HTTP servers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from govflow.activities.connectors import (
    ConnectorError,
    HttpJsonConnector,
    PostgresTableConnector,
    ScopedConnectors,
    ScopeViolation,
    SharedPool,
    Table,
    WriteRequest,
)
from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import RunFinished
from govflow.activities.models import ModelError, ModelRequest, OpenAIChatClient
from govflow.activities.models.chat import Message
from govflow.activities.registry import Registry
from govflow.activities.run_activities import RunActivities
from govflow.activities.run_messages import EvidenceItem, PlannedWrite, PublishAll
from govflow.examples.support_triage import EXAMPLES
from govflow.policies import Action, load_policy
from tests.local_servers import ChatCompletionsApi, RecordsApi, serve

TRIAGE = load_policy(EXAMPLES / "support-triage.yaml")
_T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REQUEST = ModelRequest(messages=[Message(role="user", content="hello")])


def _never(_: object) -> None:
    return None


# --- HTTP JSON connector ---------------------------------------------------------------------------


async def test_http_connector_reads_and_writes_once_per_key() -> None:
    api = RecordsApi({"ticket": {"T1": {"id": "T1", "reply_body": None, "category": None}}})
    with serve(api) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            conn = HttpJsonConnector("ticketing", client)
            assert (await conn.read("ticket", "T1")) == {"id": "T1", "reply_body": None, "category": None}
            assert await conn.read("ticket", "nope") is None
            request = WriteRequest(
                resource="ticket",
                record_id="T1",
                operation="reply",
                fields={"reply_body": "hi"},
                idempotency_key="r1:a",
            )
            first = await conn.write(request, _never)
            again = await conn.write(request, _never)
    assert first.before == {"id": "T1", "reply_body": None, "category": None}
    assert first.after == {"id": "T1", "reply_body": "hi", "category": None}
    assert not first.replayed
    assert again.replayed
    assert again.after == first.after
    assert api.writes == 1


async def test_http_connector_errors_say_whether_a_retry_can_help() -> None:
    api = RecordsApi({"ticket": {"T1": {"id": "T1"}}})
    with serve(api) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            conn = HttpJsonConnector("ticketing", client)
            api.fail_next = [503]
            with pytest.raises(ConnectorError, match="answered 503") as transient:
                await conn.read("ticket", "T1")
            assert transient.value.retryable
            api.fail_next = [422]
            with pytest.raises(ConnectorError, match="answered 422") as permanent:
                await conn.read("ticket", "T1")
            assert not permanent.value.retryable
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ConnectorError, match="failed") as down:
            await HttpJsonConnector("ticketing", client).read("ticket", "T1")
    assert down.value.retryable


async def test_the_scope_guard_refuses_before_the_http_call() -> None:
    api = RecordsApi({"ticket": {"T1": {"id": "T1"}}})
    with serve(api) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            io = ScopedConnectors(TRIAGE, {"ticketing": HttpJsonConnector("ticketing", client)})
            bad = WriteRequest(resource="ticket", record_id="T1", operation="delete", fields={}, idempotency_key="r1:x")
            with pytest.raises(ScopeViolation, match=r"no grant allows ticketing\.ticket\.delete"):
                await io.write("ticketing", bad)
            sneaky = WriteRequest(
                resource="ticket",
                record_id="T1",
                operation="reply",
                fields={"status": "closed"},
                idempotency_key="r1:y",
            )
            with pytest.raises(ScopeViolation, match="field 'status' is outside grant read-tickets"):
                await io.write("ticketing", sneaky)
    assert api.writes == 0
    assert api.seen_keys == {}


# --- the publish activity: the guard sits where the write happens ----------------------------------------


async def test_publish_refuses_out_of_scope_writes_and_records_that_move_out_of_scope(
    store: EvidenceStore, registry: Registry, sor_url: str
) -> None:
    activities = RunActivities(registry, store)
    env = ActivityEnvironment()

    def publish(action: Action, run_id: str) -> PublishAll:
        return PublishAll(run_id=run_id, task="support-triage", task_version="1", writes=[PlannedWrite(action=action)],
                          seq=1, at=_T0)  # fmt: skip

    delete = Action(action_id="x", system="crm", resource="contact", operation="delete", record_id="C0001")
    refused = (await env.run(activities.publish_all, publish(delete, "r1"))).refused
    assert refused is not None
    assert "no grant allows crm.contact.delete" in refused.reason
    assert [e["kind"] for e in await store.events("run", "r1")] == ["scope_refusal"]

    conn = await asyncpg.connect(sor_url)
    try:
        # Decided while the contact was in the eu; moved to apac before the write.
        await conn.execute("UPDATE contact SET region = 'apac' WHERE id = 'C0001'")
        flag = Action(
            action_id="flag", system="crm", resource="contact", operation="update", record_id="C0001",
            fields={"status": "churn-risk"},
        )  # fmt: skip
        moved = await env.run(activities.publish_all, publish(flag, "r1b"))
        assert moved.refused is not None
        assert "its region is 'apac'" in moved.refused.reason
        assert moved.written == []
        row = await conn.fetchrow("SELECT status FROM contact WHERE id = 'C0001'")
        assert row is not None
        assert row["status"] == "active"
        assert await conn.fetchval("SELECT count(*) FROM govflow_idempotency") == 0
    finally:
        await conn.close()


async def test_publish_all_writes_in_order_and_records_a_refused_write_with_the_ones_before_it(
    store: EvidenceStore, registry: Registry, sor_url: str
) -> None:
    """A run's writes go out in one activity: the reply is written, the churn flag (its contact moved out
    of the grant after the decision) is refused at the write, and the chain records both in one commit,
    without run_finished. Retried, the activity writes nothing twice and stores no row twice."""
    activities = RunActivities(registry, store)
    env = ActivityEnvironment()
    reply = Action(
        action_id="reply", system="ticketing", resource="ticket", operation="reply", record_id="T0001",
        fields={"reply_body": "We are on it.", "category": "bug"},
    )  # fmt: skip
    flag = Action(
        action_id="flag", system="crm", resource="contact", operation="update", record_id="C0001",
        fields={"status": "churn-risk"},
    )  # fmt: skip
    batch = PublishAll(
        run_id="r2", task="support-triage", task_version="1", writes=[PlannedWrite(action=reply),
        PlannedWrite(action=flag)], seq=1, at=_T0, then=[EvidenceItem.of(RunFinished(outcome="published"))],
    )  # fmt: skip
    conn = await asyncpg.connect(sor_url)
    try:
        await conn.execute("UPDATE contact SET region = 'apac' WHERE id = 'C0001'")
        result = await env.run(activities.publish_all, batch)
        assert [w.action_id for w in result.written] == ["reply"]
        assert result.refused is not None
        assert result.refused.action_id == "flag"
        assert "its region is 'apac'" in result.refused.reason
        rows = await store.events("run", "r2")
        assert [r["kind"] for r in rows] == ["touched_record", "scope_refusal"]
        assert len({r["recorded_at"] for r in rows}) == 1  # one transaction
        assert (result.next_seq, result.head) == (3, rows[-1]["hash"])
        assert await conn.fetchval("SELECT status FROM contact WHERE id = 'C0001'") == "active"
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2)
        again = await retry.run(activities.publish_all, batch)
        assert again.written[0].replayed
        assert again.refused == result.refused
        assert again.head == result.head
        assert len(await store.events("run", "r2")) == 2
        assert await conn.fetchval("SELECT count(*) FROM govflow_idempotency") == 1
    finally:
        await conn.close()


async def test_postgres_connector_refuses_unknown_columns(sor_url: str) -> None:
    pool = SharedPool(sor_url)
    conn = PostgresTableConnector("crm", pool, {"contact": Table(name="contact")})
    request = WriteRequest(
        resource="contact", record_id="C0001", operation="update", fields={"shoe_size": 44}, idempotency_key="k"
    )
    with pytest.raises(ConnectorError, match="no column shoe_size in table contact") as caught:
        await conn.write(request, _never)
    assert not caught.value.retryable
    await pool.close()


async def test_find_looks_records_up_by_field_under_the_grants(sor_url: str) -> None:
    pool = SharedPool(sor_url)
    io = ScopedConnectors(TRIAGE, {"crm": PostgresTableConnector("crm", pool, {"contact": Table(name="contact")})})
    # Contact i is in region ("eu", "us", "eu", "us", "apac")[i % 5]; apac is outside the grant.
    found = await io.find("crm", "contact", {"region": "eu", "status": "active"}, limit=3)
    assert list(found) == ["C0002", "C0005", "C0007"]
    assert all(r["region"] == "eu" for r in found.values())
    assert [r.record_id for r in io.reads] == ["C0002", "C0005", "C0007"]  # each one is evidence of a read
    assert await io.find("crm", "contact", {"email": "nobody@example.com"}) == {}
    with pytest.raises(ScopeViolation, match="its region is 'apac'"):
        await io.find("crm", "contact", {"status": "active"})  # some of them are in apac
    with pytest.raises(ConnectorError, match="no column shoe_size in table contact to find by"):
        await io.find("crm", "contact", {"shoe_size": 44})
    with pytest.raises(ConnectorError, match="find needs at least one field"):
        await io.find("crm", "contact", {})
    with pytest.raises(ConnectorError, match=r"find limit 0 is outside 1\.\.1000"):
        await io.find("crm", "contact", {"region": "eu"}, limit=0)
    with pytest.raises(ScopeViolation, match=r"no grant covers crm\.invoice"):
        await io.find("crm", "invoice", {"id": "x"})
    await pool.close()


async def test_find_names_a_connector_that_cannot_look_up_by_field() -> None:
    api = RecordsApi({"ticket": {"T1": {"id": "T1"}}})
    with serve(api) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            io = ScopedConnectors(TRIAGE, {"ticketing": HttpJsonConnector("ticketing", client)})
            with pytest.raises(ConnectorError, match=r"ticketing: its connector \(HttpJsonConnector\) cannot look"):
                await io.find("ticketing", "ticket", {"category": "billing"})


# --- the OpenAI-compatible client ------------------------------------------------------------------------


async def test_openai_client_returns_text_model_latency_and_tokens() -> None:
    api = ChatCompletionsApi([(200, ChatCompletionsApi.completion('{"ok": true}', model="gpt-x-2026"), {})])
    with serve(api) as base:
        client = OpenAIChatClient(f"{base}/v1", "gpt-x", api_key="sk-test")
        response = await client.complete(REQUEST)
        await client.aclose()
    assert response.text == '{"ok": true}'
    assert response.model == "gpt-x-2026"
    assert (response.prompt_tokens, response.completion_tokens) == (12, 7)
    assert response.latency_ms > 0
    sent = api.requests[0]
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"]["model"] == "gpt-x"
    assert sent["body"]["response_format"] == {"type": "json_object"}
    assert sent["body"]["messages"] == [{"role": "user", "content": "hello"}]


async def test_openai_client_retries_429_and_5xx_then_succeeds() -> None:
    api = ChatCompletionsApi(
        [
            (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
            (503, {"error": {"message": "overloaded"}}, {}),
            (200, ChatCompletionsApi.completion("fine"), {}),
        ]
    )
    with serve(api) as base:
        client = OpenAIChatClient(f"{base}/v1", "m", backoff_s=0.01)
        response = await client.complete(REQUEST)
        await client.aclose()
    assert response.text == "fine"
    assert client.attempts == 3


async def test_openai_client_gives_up_after_max_attempts_and_does_not_retry_400() -> None:
    api = ChatCompletionsApi([(500, {"error": {"message": "boom"}}, {})])
    with serve(api) as base:
        client = OpenAIChatClient(f"{base}/v1", "m", backoff_s=0.01, max_attempts=3)
        with pytest.raises(ModelError, match=r"failed 3 times \(last: answered 500\)") as gave_up:
            await client.complete(REQUEST)
        assert gave_up.value.retryable
        await client.aclose()
    assert len(api.requests) == 3
    bad = ChatCompletionsApi([(400, {"error": {"message": "bad model"}}, {})])
    with serve(bad) as base:
        client = OpenAIChatClient(f"{base}/v1", "m", backoff_s=0.01)
        with pytest.raises(ModelError, match="answered 400") as refused:
            await client.complete(REQUEST)
        assert not refused.value.retryable
        await client.aclose()
    assert len(bad.requests) == 1


async def test_openai_client_names_a_malformed_answer() -> None:
    api = ChatCompletionsApi([(200, {"choices": []}, {})])
    with serve(api) as base:
        client = OpenAIChatClient(f"{base}/v1", "m")
        with pytest.raises(ModelError, match="without choices"):
            await client.complete(REQUEST)
        await client.aclose()


async def test_evidence_the_database_rejects_fails_at_once_instead_of_retrying_forever(
    store: EvidenceStore, registry: Registry
) -> None:
    """SQLSTATE decides (activities/pgerrors.py): a row Postgres refuses (22P05: a NUL in JSON text) is
    final, where before it was retried forever inside the run's evidence lock."""
    from govflow.activities.run_messages import EvidenceItem, RecordEvidence

    rec = RecordEvidence(
        run_id="r-nul", task="support-triage", task_version="1", seq=1, at=_T0,
        items=[EvidenceItem(kind="note", payload={"text": "a\x00b"})],
    )  # fmt: skip
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(RunActivities(registry, store).append_run_evidence, rec)
    assert (refused.value.type, refused.value.non_retryable) == ("EvidenceRejected", True)
    assert "unsupported Unicode escape sequence" in str(refused.value)
