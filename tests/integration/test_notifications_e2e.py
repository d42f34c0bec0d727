"""Notifications of pending approvals, end to end: a real local receiver that checks every signature with
the function docs/webhooks.md gives, the Temporal dev server, real Postgres."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.export.bundle import show
from govflow.policies import PolicyError, parse_policy
from govflow.policies.errors import GovflowError
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review, RunResult
from tests.helpers import eventually, keep_history, start_run, wait_for, worker
from tests.local_servers import WebhookReceiver, serve

pytestmark = pytest.mark.devserver

DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"
SECRET = "whsec-test-0123456789"
ENV = "GOVFLOW_TEST_HOOK_SECRET"


def documented_verify() -> Callable[..., bool]:
    """The receiver's check, exactly as docs/webhooks.md prints it."""
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)
    verify: Callable[..., bool] = scope["verify"]
    return verify


def policy_with(base: str) -> Any:
    doc = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
    doc["rollout"]["required"] = False
    doc["notifications"] = [
        {"name": "leads", "url": f"{base}/leads", "secret": {"env": ENV}, "roles": ["support-lead"]},
        {"name": "churn", "url": f"{base}/churn", "format": "slack", "secret": {"env": ENV},
         "rules": ["flag-churn-risk"]},
    ]  # fmt: skip
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="support-triage.yaml (notifications)")


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, SECRET)
    return SECRET


async def notified_registry(sor_url: str, base: str) -> Registry:
    return example_registry(sor_url, policy=policy_with(base))


@pytest.fixture
async def receiver(secret: str) -> AsyncIterator[tuple[WebhookReceiver, str]]:
    hook = WebhookReceiver(secret.encode(), documented_verify())
    with serve(hook) as base:
        yield hook, base


async def approve_all(client: Client, run_id: str) -> None:
    handle = client.get_workflow_handle(run_id)
    status = await wait_for(handle, lambda s: bool(s.pending))  # type: ignore[arg-type]
    for pending in status.pending:
        reviewers = ["bob", "chen"] if pending.action_id == "flag-churn" else ["alice"]
        for reviewer in reviewers:
            await handle.signal(GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=pending.digest))


async def test_twenty_parked_runs_get_one_signed_message_per_transition(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, thirty_tickets: str, task_queue: str,
    receiver: tuple[WebhookReceiver, str],
) -> None:  # fmt: skip
    hook, base = receiver
    sor_url = thirty_tickets
    client = dev_server_env.client
    registry = await notified_registry(sor_url, base)
    tickets = [f"T{i:04d}" for i in range(1, 31) if i % 5 != 4][:20]  # every fifth contact is outside the grant
    async with worker(client, task_queue, store, registry):
        handles = [await start_run(client, task_queue, t) for t in tickets]
        statuses = [await wait_for(h, lambda s: bool(s.pending)) for h in handles]
        # The runs are polled (status queries) again and again while they wait: nothing more is sent.
        for _ in range(3):
            for h in handles:
                await h.query(GovernedRunWorkflow.status)
        await eventually(lambda: asyncio.sleep(0, hook.messages("/leads")), lambda m: len(m) >= 20)
        await asyncio.sleep(1.0)
        waiting = hook.messages("/leads")
        assert len(waiting) == 20
        assert Counter(m["body"]["run_id"] for m in waiting) == Counter(h.id for h in handles)
        churn_runs = [h.id for h, s in zip(handles, statuses, strict=True) if any(p.action_id == "flag-churn"
                                                                               for p in s.pending)]  # fmt: skip
        assert churn_runs, "the seeded tickets include churn signals"
        churn = hook.messages("/churn")
        assert sorted(m["message_id"].split("-1-churn")[0].removeprefix("notify-") for m in churn) == sorted(churn_runs)

        # What a reviewer needs is in the message: the digest to approve, who may, until when, the command.
        first, status = waiting[0]["body"], next(s for s in statuses if s.run_id == waiting[0]["body"]["run_id"])
        reply = next(a for a in first["actions"] if a["action_id"] == "reply")
        pending = next(p for p in status.pending if p.action_id == "reply")
        assert (first["type"], first["transition"], first["requester"]) == ("govflow.approval.waiting", "waiting",
                                                                              "priya")  # fmt: skip
        assert (reply["digest"], reply["rule"], reply["risk"], reply["quorum"]) == (
            pending.digest, "reply-to-ticket", "medium", 1)  # fmt: skip
        assert reply["eligible"] == ["alice", "bob", "chen"]
        assert reply["approve"] == f"govflow approve {first['run_id']} --as <you> --action reply"
        assert "Open the run in Temporal" not in churn[0]["body"]["text"]  # no UI address given to this worker
        assert "`flag-churn`" in churn[0]["body"]["text"]

        for h in handles:
            await approve_all(client, h.id)
        results = [await client.get_workflow_handle(h.id, result_type=RunResult).result() for h in handles]
        await eventually(lambda: asyncio.sleep(0, hook.messages("/leads")), lambda m: len(m) >= 40)
        await asyncio.sleep(1.0)
    await registry.aclose()

    assert {r.outcome for r in results} == {"published"}
    leads = hook.messages("/leads")
    by_transition = Counter(m["body"]["transition"] for m in leads)
    assert by_transition == {"waiting": 20, "decided": 20}
    assert all(m["verified"] for m in hook.received), "every request carries a valid signature"
    decided = [m["body"] for m in leads if m["body"]["transition"] == "decided"]
    assert {a["status"] for d in decided for a in d["actions"]} == {"approved"}
    assert len({m["message_id"] for m in hook.received}) == len(hook.received)  # one message each, none repeated
    chain = await store.events("notification", waiting[0]["message_id"])
    assert [e["kind"] for e in chain] == ["notification_requested", "notification_delivered"]
    assert (await store.verify("notification", waiting[0]["message_id"])).ok


async def test_a_receiver_that_is_down_delays_nothing_and_every_failed_attempt_is_recorded(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, secret: str
) -> None:
    down_until = time.monotonic() + 6.0
    hook = WebhookReceiver(secret.encode(), documented_verify(), failing=lambda: time.monotonic() < down_until)
    client = dev_server_env.client
    with serve(hook) as base:
        registry = await notified_registry(sor_url, base)
        async with worker(client, task_queue, store, registry):
            started = time.monotonic()
            handles = [await start_run(client, task_queue, t) for t in ("T0001", "T0002", "T0003")]
            for h in handles:
                # Once its wait is announced (a gate approved before that is never announced at all).
                await eventually(lambda: store.run_notifications(h.id), bool)  # noqa: B023
                await approve_all(client, h.id)
            results = [await client.get_workflow_handle(h.id, result_type=RunResult).result() for h in handles]
            took = time.monotonic() - started
            # Approved and published while the receiver still answered 500.
            assert took < 6.0, took
            assert hook.refused > 0
            assert {r.outcome for r in results} == {"published"}
            # The deliveries catch up once it is back: a waiting and a decided message per run.
            await eventually(lambda: asyncio.sleep(0, hook.messages("/leads")), lambda m: len(m) >= 6,
                             tries=300, every=0.1)  # fmt: skip
        await registry.aclose()
    leads = hook.messages("/leads")
    assert Counter(m["body"]["transition"] for m in leads) == {"waiting": 3, "decided": 3}
    assert all(m["verified"] for m in leads)
    first = next(m["message_id"] for m in leads if m["body"]["run_id"] == handles[0].id
                 and m["body"]["transition"] == "waiting")  # fmt: skip
    kinds = [e["kind"] for e in await store.events("notification", first)]
    assert kinds[0] == "notification_requested"
    assert kinds[-1] == "notification_delivered"
    assert "notification_failed" in kinds
    failed = next(e["payload"] for e in await store.events("notification", first) if e["kind"] == "notification_failed")
    assert (failed["status"], failed["detail"], failed["attempt"]) == (500, "the receiver answered 500", 1)
    # What an auditor reads: the run names its announcements and how each delivery went.
    run_lines = "\n".join(await show(store, "run", handles[0].id))
    assert "notified leads (waiting): delivered to leads on attempt " in run_lines
    notice = "\n".join(await show(store, "notification", first))
    assert "attempt 1 to leads FAILED: the receiver answered 500; next attempt in 1 s" in notice
    assert "chain verifies" in notice


def test_bad_notification_settings_are_refused_naming_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(entry: dict[str, Any]) -> str:
        doc = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
        doc["notifications"] = [{"name": "leads", "secret": {"env": ENV}, "roles": ["support-lead"], **entry}]
        with pytest.raises(PolicyError) as caught:
            parse_policy(yaml.safe_dump(doc, sort_keys=False), source="p.yaml")
        return str(caught.value)

    assert "must be https (plain http only to localhost)" in refused({"url": "http://hooks.example.com/x"})
    assert "never in the policy" in refused({"url": "https://h.example.com", "secret": "whsec-plain"})
    assert "exactly one of env" in refused({"url": "https://h.example.com", "secret": {}})
    assert "'nope' is not an action rule that asks for approval" in refused(
        {"url": "https://h.example.com", "rules": ["nope"]}
    )
    assert "names no rules and no roles" in refused({"url": "https://h.example.com", "roles": []})

    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(GovflowError, match=f"notification leads: its secret's environment variable {ENV} is not set"):
        example_registry("postgresql://unused/x", policy=policy_with("http://127.0.0.1:9"))


async def test_an_escalation_is_announced_to_the_role_it_goes_to(
    own_time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str,
    receiver: tuple[WebhookReceiver, str],
) -> None:  # fmt: skip
    hook, base = receiver
    env = own_time_skipping_env
    policy = policy_with(base)
    managers = policy.notifications[0].model_copy(update={"name": "managers", "url": f"{base}/managers",
                                                          "roles": ("support-manager",)})  # fmt: skip
    policy = policy.model_copy(update={"notifications": (*policy.notifications, managers)})
    registry = example_registry(sor_url, policy=policy)
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        await wait_for(handle, lambda s: bool(s.pending))
        await eventually(lambda: asyncio.sleep(0, hook.messages("/leads")), lambda m: len(m) == 1)
        assert hook.messages("/managers") == []  # a lead's gate: managers hear of it only when it escalates
        await env.sleep(timedelta(hours=8, minutes=1))
        (escalated,) = await eventually(lambda: asyncio.sleep(0, hook.messages("/managers")), lambda m: len(m) == 1)
        status = await wait_for(handle, lambda s: bool(s.pending) and s.pending[0].gates[0].eligible == ["chen"])
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="chen", action_digest=status.pending[0].digest)
        )
        result = await env.client.get_workflow_handle(handle.id, result_type=RunResult).result()
        await keep_history(handle, "notified-escalation")
        # Every delivery done before the worker stops: a workflow left waiting would hold the shared clock.
        await eventually(lambda: asyncio.sleep(0, hook.messages("/managers")), lambda m: len(m) == 2)
        await eventually(lambda: asyncio.sleep(0, hook.messages("/leads")), lambda m: len(m) == 2)
    await registry.aclose()
    assert result.outcome == "published"
    body = escalated["body"]
    assert (body["transition"], body["actions"][0]["eligible"], body["actions"][0]["status"]) == (
        "escalated", ["chen"], "open")  # fmt: skip
    assert [m["body"]["transition"] for m in hook.messages("/leads")] == ["waiting", "decided"]
    assert [m["body"]["transition"] for m in hook.messages("/managers")] == ["escalated", "decided"]


def documented_notification_blocks() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every ```yaml block of README.md and docs/webhooks.md that configures notifications, as written."""
    found = []
    for path in (DOC.parents[1] / "README.md", DOC):
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.DOTALL):
            if block.lstrip().startswith("notifications:"):
                found.append((path.name, yaml.safe_load(block)["notifications"]))
    return found


async def test_the_documented_notification_snippets_run_as_written(
    dev_server_env: WorkflowEnvironment, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    """The README's and docs/webhooks.md's notification examples, with the variable they name set: every
    command and the worker start (a GOVFLOW_* secret was once refused as an unknown setting)."""
    from tests.integration.test_governed_run_e2e import cli_env, govflow

    blocks = documented_notification_blocks()
    assert [name for name, _ in blocks] == ["README.md", "webhooks.md"]
    for name, notifications in blocks:
        secrets = sorted({n["secret"]["env"] for n in notifications})
        assert secrets == ["GOVFLOW_LEADS_HOOK_SECRET"], (name, secrets)
        policies = tmp_path / name
        policies.mkdir()
        doc = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
        doc["notifications"] = notifications
        (policies / "support-triage.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        task_queue = f"tq-{name}-{time.time_ns()}"
        environ = cli_env(
            dev_server_env, database_url, task_queue, SOR_URL=sor_url, GOVFLOW_POLICY_DIR=str(policies),
            GOVFLOW_APP="tests.integration.example_app:build", GOVFLOW_LEADS_HOOK_SECRET=SECRET,
        )  # fmt: skip
        code, out, err = await govflow(environ, "policy", "check", str(policies / "support-triage.yaml"))
        assert code == 0, out + err
        code, out, err = await govflow(environ, "runs", "list", "--json")
        assert code == 0, out + err
        # The worker starts and serves a run (a shadow run: it announces nothing to the documented URL).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "govflow", "worker", env=environ,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            handle = await start_run(dev_server_env.client, task_queue, "T0002", mode="shadow")
            result = await asyncio.wait_for(handle.result(), timeout=60)
            assert result.outcome == "shadowed", result
        finally:
            proc.terminate()
            _, stderr = await proc.communicate()
        assert b"unknown setting" not in stderr
