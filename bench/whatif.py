"""What-if over 100,000 past actions: how long `govflow policy whatif` takes on this machine.

Seeds an embedded evidence database with real chains written by the store's own append path: runs of
support-triage, each with two proposed actions (a reply, a churn flag) decided by the shipped policy's
engine, the reviewers' votes, and the finished run's report for its rollout. Then times exactly what
the command does (read and verify every chain, re-decide every action under a candidate that lowers
the churn quorum, replay the rollout's outcomes through its gates), ``--rounds`` times.

    .venv/bin/python -m bench.whatif [--actions 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from bench.harness import evidence_database, judged
from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence import EvidenceEvent, EvidenceStore, RunRecord
from govflow.activities.evidence.events import (
    PROJECTED,
    ApprovalAttemptRecord,
    ContextRead,
    Event,
    RolloutStarted,
    RunFinished,
    RunReport,
    RunStarted,
)
from govflow.activities.run_messages import ProposeResult
from govflow.examples.support_triage import EXAMPLES
from govflow.policies import Action, RunContext, load_policy, parse_policy, policy_digest
from govflow.whatif import collect, whatif
from govflow.workflows import approvals

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROLLOUT = "rollout-support-triage-v1"
TARGET_S = 30.0


def run_events(i: int, policy_digest_: str) -> tuple[RunRecord, list[tuple[Event, datetime]]]:
    policy = SHIPPED
    run_id, at = f"run-{i:07d}", T0 + timedelta(seconds=i)
    record = RunRecord(run_id=run_id, task="support-triage", task_version="1", policy_digest=policy_digest_,
                       item_key=f"T{i:07d}", requester="priya", stage="canary", mode="live", started_at=at,
                       rollout_id=ROLLOUT)  # fmt: skip
    contact = {"id": f"C{i:07d}", "region": "eu", "status": "active"}
    reads = [ReadLog(system="crm", resource="contact", record_id=contact["id"], values=contact)]
    actions = [
        Action(action_id="reply", system="ticketing", resource="ticket", operation="reply", record_id=f"T{i:07d}",
               fields={"reply_body": "Thanks for writing; we are on it."}),
        Action(action_id="flag-churn", system="crm", resource="contact", operation="update",
               record_id=contact["id"], fields={"status": "churn-risk", "churn_reason": "leaving"}),
    ]  # fmt: skip
    scores = {"confidence": 0.92 if i % 10 else 0.4, "relevance": 0.9}
    proposal = ProposeResult(actions=actions, scores=scores, proposal={"actions": [], "scores": scores})
    ctx = RunContext(run_id=run_id, requester="priya", now=at)
    states, passed, decided = approvals.decide_proposal(policy, policy_digest_, proposal, reads, ctx)
    events: list[Event] = [RunStarted(**record.model_dump(exclude={"started_at"})), ContextRead(reads=reads)]
    events += decided
    for state in states.values():
        for reviewer in ("alice", "bob")[: max(g.gate.quorum for g in state.gates)]:
            vote = ApprovalAttemptRecord(action_id=state.action.action_id, action_digest=state.digest,
                                         reviewer=reviewer, verdict="approve", accepted=True, reason="ok")  # fmt: skip
            events.append(vote)
    report = RunReport(run_id=run_id, stage="canary", mode="live", checks_passed=passed, scores=scores)
    events.append(RunFinished(outcome="published", report=report))
    return record, [(e, at + timedelta(milliseconds=n)) for n, e in enumerate(events)]


SHIPPED = load_policy(EXAMPLES / "support-triage.yaml")


async def seed(store: EvidenceStore, runs: int) -> int:
    digest = policy_digest(SHIPPED)
    await store.append_event("rollout", ROLLOUT, 1, "rollout_started", T0, RolloutStarted(
        task="support-triage", task_version="1", policy_digest=digest, stage="canary").payload())  # fmt: skip
    queue = list(range(runs))
    written = 0

    async def writer() -> None:
        nonlocal written
        while queue:
            record, events = run_events(queue.pop(), digest)
            batch = [
                (EvidenceEvent(stream="run", stream_id=record.run_id, seq=n, kind=e.kind, occurred_at=at,
                               payload=e.payload()),
                 PROJECTED[e.kind].model_validate(e.payload()) if e.kind in PROJECTED else None)
                for n, (e, at) in enumerate(events, 1)
            ]  # fmt: skip
            await store.append_many(batch, run=record)
            written += len(batch)

    await asyncio.gather(*(writer() for _ in range(8)))
    return written


async def main_async(args: argparse.Namespace) -> int:
    _server, url = await evidence_database()  # kept: the server lives as long as this name
    runs = args.actions // 2
    candidate = parse_policy((EXAMPLES / "support-triage.yaml").read_text().replace("      quorum: 2\n",
                                                                                 "      quorum: 1\n"))  # fmt: skip
    async with EvidenceStore.open(url) as store:
        started = time.perf_counter()
        rows = await seed(store, runs)
        took = time.perf_counter() - started
        print(f"seeded {runs:,} runs, {runs * 2:,} actions, {rows:,} chained rows in {took:.0f} s")
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            evidence = await collect(store, "support-triage", "1", None, 10**7)
            t1 = time.perf_counter()
            report = whatif(candidate, evidence, "support-triage", "1")
            t2 = time.perf_counter()
            times.append(t2 - t0)
            print(f"  read + verify {t1 - t0:5.1f} s, re-decide + replay {t2 - t1:5.1f} s: {report.actions:,} actions, "
                  f"{report.changed_actions:,} would change, {report.verified_streams:,} chains verified")  # fmt: skip
            assert report.actions == runs * 2, report.actions
            assert report.changed_actions == runs  # every churn flag: quorum 2 -> 1
    return judged(f"whatif over {runs * 2:,} actions", times, TARGET_S)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whatif", description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
