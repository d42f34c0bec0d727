"""`govflow backtest` over real evidence from real runs on the dev server: support triage run 50 times,
reviewers approving some replies and rejecting others; candidates scored against what they decided."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import yaml
from pydantic import BaseModel
from temporalio.testing import WorkflowEnvironment

from govflow import Registry, parse_policy
from govflow.activities.connectors import SharedPool
from govflow.activities.evidence import EvidenceStore
from govflow.backtest import BacktestError, backtest
from govflow.cli.policy import backtest_line
from govflow.examples.support_triage import (
    EXAMPLES,
    SupportTriage,
    TicketContext,
    TriageProposal,
    baseline_model,
    connectors,
    seed,
)
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review
from tests.helpers import start_run, wait_for, worker
from tests.integration.test_governed_run_e2e import cli_env, govflow

pytestmark = pytest.mark.devserver

REJECTED = {"T0002", "T0005", "T0007", "T0011"}
"""The tickets whose proposed reply the reviewers reject."""


class Careful(SupportTriage):
    """Proposes no reply where the reviewers rejected one: exactly what they approved."""

    version = "careful"

    async def propose(self, context: TicketContext, model: Any) -> TriageProposal:
        proposal = await super().propose(context, model)
        if context.ticket["id"] in REJECTED:
            return proposal.model_copy(update={"actions": [a for a in proposal.actions if a.action_id != "reply"]})
        return proposal


class Same(SupportTriage):
    """The old version again: it re-proposes the replies the reviewers rejected."""

    version = "same"


class OtherContext(BaseModel):
    order: dict[str, Any]


class Mismatched(SupportTriage):
    version = "mismatched"
    context_model = OtherContext


class Gated(Careful):
    version = "gated"


class GatedSame(SupportTriage):
    version = "gated-same"


def requiring_a_backtest() -> Any:
    """The shipped policy, asking a rollout for a backtest: agreement 0.9 over 5 decisions, no rejected
    action proposed again."""
    doc = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
    doc["rollout"]["backtest"] = {"min_agreement": 0.9, "min_decided": 5, "max_rejected_proposed": 0}
    doc["rollout"]["stages"][0] = {"name": "shadow", "live_fraction": 0.0, "min_runs": 5}
    return parse_policy(yaml.safe_dump(doc, sort_keys=False))


def registry_with(sor_url: str, *tasks: SupportTriage) -> Registry:
    registry = Registry()
    for task in tasks:
        policy = requiring_a_backtest() if task.version.startswith("gated") else EXAMPLES / "support-triage.yaml"
        registry.register(task, policy=policy, connectors=connectors(SharedPool(sor_url)), model=baseline_model())
    return registry


async def test_a_candidate_is_scored_against_what_the_reviewers_decided(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, database_url: str
) -> None:
    client = dev_server_env.client
    conn = await asyncpg.connect(sor_url)
    try:
        await seed(conn, 50)  # the fixture's 20 tickets and 30 more
    finally:
        await conn.close()
    registry = registry_with(sor_url, SupportTriage(), Careful(), Same(), Mismatched(), Gated(), GatedSame())
    tickets = [f"T{n:04d}" for n in range(1, 51)]
    try:
        async with worker(client, task_queue, store, registry):
            handles = [await start_run(client, task_queue, t) for t in tickets]

            rejected: list[str] = []  # the runs whose reply was rejected

            async def decide(ticket: str, handle: Any) -> None:
                # A run whose churn flag falls outside the crm grant is refused whole: nobody decides it.
                status = await wait_for(handle, lambda s: bool(s.pending) or s.outcome is not None, tries=400)
                for pending in status.pending:
                    if pending.action_id == "reply" and ticket in REJECTED:
                        rejected.append(handle.id)
                        await handle.signal(GovernedRunWorkflow.reject, Review(reviewer="alice",
                                            action_digest=pending.digest, reason="wrong tone"))  # fmt: skip
                        continue
                    for reviewer in ("alice", "bob")[: pending.gates[0].quorum]:
                        await handle.signal(GovernedRunWorkflow.approve,
                                            Review(reviewer=reviewer, action_digest=pending.digest))  # fmt: skip
                await handle.result()

            await asyncio.gather(*(decide(t, h) for t, h in zip(tickets, handles, strict=True)))

        assert len(rejected) >= 3, rejected
        careful = await backtest(store, registry, "support-triage", "careful")
        # Runs whose gather was refused (a contact outside the crm grant) recorded no context: skipped, counted.
        assert careful.runs_used + careful.skipped.get("no recorded context", 0) == 50, careful.skipped
        assert careful.runs_used >= 30
        assert careful.agreement_with_approved == 1.0
        assert careful.rejected_reproposed == []
        assert careful.changes["disappeared"] >= len(rejected)  # (refused runs proposed replies too)
        assert careful.against_humans["reply-to-ticket"]["reject"] == {"absent": len(rejected)}
        assert "reviewers saw the old version's proposals" in careful.caveat
        assert (await store.verify("backtest", careful.stream_id)).ok
        recorded = [e["payload"] for e in await store.events("backtest", careful.stream_id)]
        assert recorded[0]["candidate"] == "careful"
        assert len(recorded[0]["runs"]) == careful.runs_used
        assert recorded[1]["agreement_with_approved"] == 1.0

        same = await backtest(store, registry, "support-triage", "same")
        assert same.agreement_with_approved == 1.0
        assert same.changes.get("disappeared", 0) == 0
        assert careful.calls["n"] == careful.runs_used
        assert careful.calls["prompt_tokens"] > 0  # what the candidate's model says each call cost
        assert any(" prompt + " in line for line in careful.lines())
        assert sorted(j.run_id for j in same.rejected_reproposed) == sorted(rejected)
        lines = same.lines()
        first = lines.index(f"  rejected actions the candidate proposes again: {len(rejected)}")
        assert lines[first + 1].endswith("reply: the same action")  # listed first, before the rules' tallies
        assert same.workload.get("needs_approval", 0) >= 20

        # Bad input: a clear message, nothing written.
        before = await store.pool.fetchval("SELECT count(*) FROM evidence_events WHERE stream = 'backtest'")
        with pytest.raises(BacktestError, match="unknown candidate: no worker task 'support-triage' version '9'"):
            await backtest(store, registry, "support-triage", "9")
        with pytest.raises(BacktestError, match="reads as the candidate's OtherContext"):
            await backtest(store, registry, "support-triage", "mismatched")
        with pytest.raises(BacktestError, match="no evidence of runs of task support-triage"):
            await backtest(store, registry, "support-triage", "careful", since=datetime(2100, 1, 1, tzinfo=UTC))
        assert await store.pool.fetchval("SELECT count(*) FROM evidence_events WHERE stream = 'backtest'") == before
        code, _, err = await govflow(cli_env(dev_server_env, database_url, task_queue), "backtest", "--task",
                                     "support-triage", "--candidate", "9")  # fmt: skip
        assert code == 1
        assert "unknown candidate" in err

        # A rollout whose policy asks for a backtest starts only with one on record meeting its bars.
        environ = cli_env(dev_server_env, database_url, task_queue)
        async with worker(client, task_queue, store, registry):
            start = ("rollout", "start", "--task", "support-triage", "--version")
            code, _, err = await govflow(environ, *start, "gated")
            assert code != 0
            assert "did not start: no backtest of support-triage vgated under policy" in err
            gated = await backtest(store, registry, "support-triage", "gated")
            code, out, err = await govflow(environ, *start, "gated")
            assert code == 0, err
            assert f"relying on backtest {gated.stream_id}" in out
            opened = [e["payload"] for e in await store.events("rollout", "rollout-support-triage-vgated")]
            assert [e.get("backtest") for e in opened if "stage" in e] == [gated.stream_id]
            audited = await backtest_line(client, store, requiring_a_backtest(), "support-triage", "gated")
            assert (audited.status, audited.detail) == ("ok", f"yes: backtest {gated.stream_id}")
            await client.get_workflow_handle("rollout-support-triage-vgated").terminate("test over")
            # A rollout its policy let start without one, audited against a policy that asks: a gap.
            code, _, err = await govflow(environ, *start, "careful")
            assert code == 0, err
            audited = await backtest_line(client, store, requiring_a_backtest(), "support-triage", "careful")
            assert audited.status == "gap"
            assert audited.detail.startswith("no: rollout-support-triage-vcareful started without one")
            await client.get_workflow_handle("rollout-support-triage-vcareful").terminate("test over")
            await backtest(store, registry, "support-triage", "gated-same")
            code, _, err = await govflow(environ, *start, "gated-same")
            assert code != 0
            assert "rejected actions again, more than the 0 allowed" in err
            assert f"it proposes {len(rejected)} rejected actions again" in err

        # A tampered chain: the backtest refuses, naming it.
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE evidence_events SET payload = payload || '{\"reason\": \"edited\"}' "
                "WHERE stream = 'run' AND stream_id = $1 AND kind = 'policy_decision'", rejected[0],
            )  # fmt: skip
        with pytest.raises(BacktestError, match=f"do not verify; the backtest will not run.*run {rejected[0]}"):
            await backtest(store, registry, "support-triage", "careful")
    finally:
        await registry.aclose()
