"""Backtest over 10,000 past runs: how long `govflow backtest` takes on this machine.

Seeds an embedded evidence database with real chains, written by the store's own append path: runs of
support-triage, each with the context it read (a ticket and its contact), its proposal (the local
baseline model's, as version 1 made it), the shipped policy's decisions and the reviewers' votes (every
seventh reply rejected). Then times exactly what the command does (read and verify every chain, rebuild
every context, call the candidate's propose with its model, 8 in flight, compare and record the
backtest's own chain), ``--rounds`` times; prints min / median / max and exits 1 above the target.

    .venv/bin/python -m bench.backtest [--runs 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from bench.harness import evidence_database, judged
from govflow import Registry
from govflow.activities.connectors import SharedPool
from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence import EvidenceEvent, EvidenceStore, RunRecord
from govflow.activities.evidence.events import PROJECTED, ApprovalAttemptRecord, ContextRead, Event, RunStarted
from govflow.activities.run_messages import ProposeResult
from govflow.backtest import backtest
from govflow.examples.support_triage import (
    _BODIES,
    EXAMPLES,
    SupportTriage,
    TicketContext,
    baseline_model,
    connectors,
)
from govflow.policies import RunContext, load_policy, policy_digest
from govflow.workflows import approvals

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TARGET_S = 60.0
SHIPPED = load_policy(EXAMPLES / "support-triage.yaml")


class Candidate(SupportTriage):
    version = "2"


async def run_events(i: int, digest: str) -> tuple[RunRecord, list[tuple[Event, datetime]]]:
    run_id, at, ticket_id = f"run-{i:07d}", T0 + timedelta(seconds=i), f"T{i:07d}"
    record = RunRecord(run_id=run_id, task="support-triage", task_version="1", policy_digest=digest,
                       item_key=ticket_id, requester="priya", stage="full", mode="live", started_at=at)  # fmt: skip
    subject, body = _BODIES[i % len(_BODIES)]
    email = f"customer{i}@example.com"
    contact = {"id": f"C{i:07d}", "email": email, "region": "eu", "status": "active"}
    ticket = {"id": ticket_id, "contact_id": contact["id"], "from_email": email, "subject": subject, "body": body}
    reads = [ReadLog(system="ticketing", resource="ticket", record_id=ticket_id, values=ticket),
             ReadLog(system="crm", resource="contact", record_id=contact["id"], values=contact)]  # fmt: skip
    made = await SupportTriage().propose(TicketContext(ticket=ticket, contact=contact), MODEL)
    proposal = ProposeResult(actions=made.actions, scores=made.scores, proposal={"actions": [], "scores": made.scores})
    ctx = RunContext(run_id=run_id, requester="priya", now=at)
    states, _, decided = approvals.decide_proposal(SHIPPED, digest, proposal, reads, ctx)
    read = ContextRead(reads=reads, context={"ticket": ticket, "contact": contact})
    events: list[Event] = [RunStarted(**record.model_dump(exclude={"started_at"})), read, *decided]
    for state in states.values():
        verdict = "reject" if state.action.action_id == "reply" and i % 7 == 0 else "approve"
        for reviewer in ("alice", "bob")[: max((g.gate.quorum for g in state.gates), default=0)]:
            events.append(
                ApprovalAttemptRecord(
                    action_id=state.action.action_id,
                    action_digest=state.digest,
                    reviewer=reviewer,
                    verdict=verdict,
                    accepted=True,
                    reason="ok",
                )
            )
            if verdict == "reject":
                break
    return record, [(e, at + timedelta(milliseconds=n)) for n, e in enumerate(events)]


MODEL = baseline_model()


async def seed(store: EvidenceStore, runs: int) -> None:
    digest = policy_digest(SHIPPED)
    queue = list(range(runs))

    async def writer() -> None:
        while queue:
            record, events = await run_events(queue.pop(), digest)
            batch = [
                (EvidenceEvent(stream="run", stream_id=record.run_id, seq=n, kind=e.kind, occurred_at=at,
                               payload=e.payload()),
                 PROJECTED[e.kind].model_validate(e.payload()) if e.kind in PROJECTED else None)
                for n, (e, at) in enumerate(events, 1)
            ]  # fmt: skip
            await store.append_many(batch, run=record)

    await asyncio.gather(*(writer() for _ in range(8)))


async def main_async(args: argparse.Namespace) -> int:
    _server, url = await evidence_database()  # kept: the server lives as long as this name
    registry = Registry()
    registry.register(
        Candidate(),
        policy=EXAMPLES / "support-triage.yaml",
        model=baseline_model(),
        connectors=connectors(SharedPool(url)),
    )  # fmt: skip (never used: no live reads)
    async with EvidenceStore.open(url) as store:
        started = time.perf_counter()
        await seed(store, args.runs)
        print(f"seeded {args.runs:,} runs in {time.perf_counter() - started:.0f} s")
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            report = await backtest(store, registry, "support-triage", "2")
            times.append(time.perf_counter() - t0)
            rejected = len(report.rejected_reproposed)
            print(f"  {times[-1]:5.1f} s: {report.runs_used:,} runs, agreement with approved "
                  f"{report.agreement_with_approved:.3f}, {rejected:,} rejected replies proposed again, "
                  f"{int(report.calls['n']):,} model calls (median {report.calls['median_ms']:.2f} ms)")  # fmt: skip
            print(f"         the gate: {'; '.join(report.gate)}")
            assert report.runs_used == args.runs, report.runs_used
            assert rejected == len([i for i in range(args.runs) if i % 7 == 0]), rejected  # the same model
    await registry.aclose()
    return judged(f"backtest over {args.runs:,} runs (closed loop, 8 proposals in flight)", times, TARGET_S)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
