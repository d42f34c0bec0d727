"""`govflow policy whatif` over evidence written by real runs (time-skipping Temporal, real Postgres)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import ProposalMade, parse_event
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import Policy, parse_policy
from govflow.whatif import WhatIfError, WhatIfReport, collect, render, whatif
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import RolloutInput
from govflow.workflows.run_api import RunInput
from tests.helpers import eventually, worker

TICKETS = [f"T{i:04d}" for i in range(1, 9)]
EXAMPLE = (EXAMPLES / "support-triage.yaml").read_text()


def candidate(old: str, new: str) -> Policy:
    assert old in EXAMPLE, old
    return parse_policy(EXAMPLE.replace(old, new), source="candidate.yaml")


async def history(env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, *, degraded: float) -> list[str]:
    """Eight shadow runs admitted by a rollout, one after the other; returns their ids in finish order."""
    registry = example_registry(sor_url, degraded=degraded)
    task_queue = f"tq-{uuid.uuid4()}"
    run_ids = []
    async with worker(env.client, task_queue, store, registry):
        rollout = await env.client.start_workflow(
            RolloutWorkflow.run, RolloutInput(task="support-triage"), id=f"rollout-{uuid.uuid4()}",
            task_queue=task_queue,
        )  # fmt: skip
        for ticket in TICKETS:
            inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                           mode="shadow", rollout_id=rollout.id)  # fmt: skip
            handle = await env.client.start_workflow(
                GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}", task_queue=task_queue
            )
            assert (await handle.result()).outcome in ("shadowed", "refused")
            run_ids.append(handle.id)
        # Every report counted before the rollout ends: an activity of a terminated workflow still in
        # flight holds the time-skipping server's clock for the tests after this one.
        await eventually(lambda: rollout.query(RolloutWorkflow.status), lambda s: s.runs_in_stage == len(TICKETS))
        await rollout.terminate("history written")
    await registry.aclose()
    return run_ids


async def report_for(store: EvidenceStore, policy: Policy) -> WhatIfReport:
    return whatif(policy, await collect(store, "support-triage", "1", None, 1000), "support-triage", "1")


async def decisions(store: EvidenceStore) -> list[asyncpg.Record]:
    return list(await store.pool.fetch("SELECT run_id, action_id, rule, decision FROM policy_decisions"))


async def systems(store: EvidenceStore, run_ids: list[str]) -> dict[tuple[str, str], str]:
    """Each proposed action's system, read from the runs' own proposal events."""
    out = {}
    for run_id in run_ids:
        for e in await store.events("run", run_id):
            event = parse_event(e["kind"], e["payload"])
            if isinstance(event, ProposalMade):
                out.update({(run_id, a.action_id): a.system for a in event.actions})
    return out


async def test_whatif_names_exactly_the_actions_a_lower_quorum_or_a_removed_grant_changes(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str
) -> None:
    run_ids = await history(time_skipping_env, store, sor_url, degraded=0.0)
    decided = await decisions(store)

    lower = candidate("      quorum: 2\n", "      quorum: 1\n")
    report = await report_for(store, lower)
    churn = {(r["run_id"], r["action_id"]) for r in decided if r["rule"] == "flag-churn-risk"}
    assert churn, "the history holds churn flags that need two approvals"
    assert {(c.run_id, c.action_id) for c in report.changes} == churn
    assert {c.group for c in report.changes} == {"quorum lowered"}
    assert all(c.exposure == "raises" and c.detail == "2 -> 1" for c in report.changes)
    assert report.runs == len(run_ids)
    assert report.actions == len(decided)

    grant = (
        "  - name: crm-contacts\n    system: crm\n    resource: contact\n    operations: [read, update]\n"
        "    fields: [status, churn_reason]\n    records: {field: region, in: [eu, us]}\n"
    )
    crm_rules = EXAMPLE[EXAMPLE.index("  - name: flag-churn-risk\n") : EXAMPLE.index("\n# Window rules")]
    no_crm = parse_policy(EXAMPLE.replace(grant, "").replace(crm_rules, ""), source="no-crm.yaml")
    report = await report_for(store, no_crm)
    system_of = await systems(store, run_ids)
    crm_allowed = {(r["run_id"], r["action_id"]) for r in decided
                   if system_of[(r["run_id"], r["action_id"])] == "crm" and r["decision"] != "deny"}  # fmt: skip
    assert crm_allowed
    assert {(c.run_id, c.action_id) for c in report.changes} == crm_allowed
    assert {c.group for c in report.changes} == {"newly denied"}
    text = render(report)
    assert f"Actions whose outcome would change: {len(crm_allowed)} of {len(decided)}" in text


async def test_whatif_replays_the_gate_and_names_the_run_it_would_have_paused_at(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    run_ids = await history(time_skipping_env, store, sor_url, degraded=1.0)  # every run fails its checks
    tight = candidate(
        "    - name: pass-rate\n      metric: pass_rate\n      threshold: 0.8\n      window: 100\n"
        "      min_sample: 20\n",
        "    - name: pass-rate\n      method: window\n      metric: pass_rate\n      threshold: 0.5\n"
        "      window: 20\n      min_sample: 5\n",
    )
    report = await report_for(store, tight)
    (replayed,) = report.rollouts
    assert replayed.outcomes == len(run_ids)
    assert replayed.actual_stop_run is None  # the shipped policy's gate needs 20 runs: it never paused
    # 0 passes in 5 runs: the 95 % upper bound (0.43) is under 0.5 at the fifth outcome, not before.
    assert replayed.candidate_stop_run == run_ids[4]
    assert any(f"would pause at run {run_ids[4]} (outcome 5, stage shadow)" in line for line in replayed.candidate)

    # The same through the CLI, with the JSON and Markdown reports.
    path = tmp_path / "tight.yaml"
    tightened = "method: window\n      threshold: 0.5\n      window: 20\n      min_sample: 5"
    path.write_text(EXAMPLE.replace("threshold: 0.8\n      window: 100\n      min_sample: 20", tightened))
    code, out, err = await cli(database_url, "policy", "whatif", str(path), "--task", "support-triage",
                               "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 0, err
    assert f"candidate: would pause at run {run_ids[4]}" in out
    loaded = WhatIfReport.model_validate_json((tmp_path / "out" / "whatif.json").read_text())
    assert loaded.rollouts[0].candidate_stop_run == run_ids[4]
    assert "# What-if: policy support-triage" in (tmp_path / "out" / "whatif.md").read_text()


async def test_whatif_refuses_bad_input_with_a_clear_message(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    run_ids = await history(time_skipping_env, store, sor_url, degraded=0.0)
    good = tmp_path / "good.yaml"
    good.write_text(EXAMPLE)
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.replace("      quorum: 2\n", "      quorum: 0\n"))

    code, _, err = await cli(database_url, "policy", "whatif", str(broken), "--task", "support-triage")
    assert code == 1
    assert "broken.yaml:" in err  # the loader's error, with its line
    assert "quorum" in err

    code, _, err = await cli(database_url, "policy", "whatif", str(good), "--task", "no-such-task")
    assert code == 1
    assert "no evidence of runs of task no-such-task" in err

    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            'UPDATE evidence_events SET payload = payload || \'{"reason": "edited"}\' '
            "WHERE stream = 'run' AND stream_id = $1 AND kind = 'policy_decision'",
            run_ids[2],
        )
    with pytest.raises(WhatIfError, match=f"do not verify.*run {run_ids[2]}: row"):
        await collect(store, "support-triage", None, None, 1000)
    code, _, err = await cli(database_url, "policy", "whatif", str(good), "--task", "support-triage")
    assert code == 1
    assert "what-if will not compute over them" in err


async def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    environ: dict[str, Any] = {**os.environ, "GOVFLOW_DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", *args, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_audit_says_when_the_running_rollout_runs_another_policy(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str
) -> None:
    from govflow.activities.evidence.policy_ledger import policy_version
    from govflow.cli.policy import drift_line
    from govflow.policies import policy_digest, policy_from_json

    env = time_skipping_env
    shipped = parse_policy(EXAMPLE)
    edited = candidate("      quorum: 2\n", "      quorum: 1\n")
    line = await drift_line(env.client, store, shipped, "support-triage", "1")
    assert (line.status, line.detail) == ("ok", "no rollout of support-triage v1 runs")

    registry = example_registry(sor_url)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env.client, task_queue, store, registry):
        rollout = await env.client.start_workflow(
            RolloutWorkflow.run, RolloutInput(task="support-triage"), id="rollout-support-triage-v1",
            task_queue=task_queue,
        )  # fmt: skip
        try:
            inp = RunInput(task="support-triage", item_key="T0001", item={"ticket_id": "T0001"}, requester="priya",
                           mode="shadow")  # fmt: skip
            handle = await env.client.start_workflow(GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}",
                                                     task_queue=task_queue)  # fmt: skip
            await handle.result()
            same = await drift_line(env.client, store, shipped, "support-triage", "1")
            assert same.status == "ok"
            assert f"run {handle.id}, the newest it admitted" in same.detail
            drift = await drift_line(env.client, store, edited, "support-triage", "1")
            assert drift.status == "blocking"
            assert drift.detail.startswith("no: it runs policy ")
            running = policy_digest(shipped)
            assert f"`govflow policy show {running[:12]}`" in drift.detail
            # The text that runs is in the evidence, content-addressed: the digest is its sha256.
            found = await policy_version(store, running[:12])
            assert found.verified
            assert policy_digest(policy_from_json(found.recorded.text)) == running
            assert [(u.task, u.task_version, u.first_run) for u in found.uses] == [("support-triage", "1", handle.id)]
            await eventually(lambda: rollout.query(RolloutWorkflow.status), lambda s: s.runs_in_stage == 1)
        finally:
            await rollout.terminate("test over")
    await registry.aclose()
