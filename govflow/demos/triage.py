"""`govflow demo`: the whole idea in one command, on the local stack.

Support-triage tickets stream through a rollout of the task's ``demo`` version:
shadow (propose, never write) until the gate passes, then canary (half the
tickets live, each write held for a named reviewer). Then the model goes bad on
purpose, the quality window breaches, and the rollout pauses itself. A summary
says what happened and where to look; everything stays up until ``make stack-down``.

The demo runs its own worker in this process (so it can degrade the model at
will), then hands over to a background ``govflow worker`` with the healthy model.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.client import admit, rollout_id, rollout_status, running_rollout, start_rollout, submit
from govflow.examples.support_triage import DEMO_TASK, DEMO_VERSION, Knob, register_demo
from govflow.policies import signing_message
from govflow.policies.errors import GovflowError
from govflow.signing import sign
from govflow.workers.settings import Settings
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout_api import RolloutStatus
from govflow.workflows.run_api import Review, RunInput, RunResult, RunStatus, submit_message

TASK, VERSION = DEMO_TASK, DEMO_VERSION
REQUESTER = "priya"
IN_FLIGHT = 8

SHADOW_ITEMS = 110
DEMO_TICKETS = 300
CANARY_ITEMS = 20
DEGRADED_ITEMS = 40
AFTER_PAUSE_ITEMS = 6
DEGRADED_SHARE = 0.8


# --- driving runs -------------------------------------------------------------------------------------


@dataclass
class Tally:
    results: list[RunResult] = field(default_factory=list)
    votes: Counter[str] = field(default_factory=Counter)
    recorded: list[tuple[str, bool, int]] = field(default_factory=list)
    """Approval attempts in the evidence: (reviewer, accepted, how many)."""
    waiting: list[str] = field(default_factory=list)
    """Live runs left waiting for a reviewer (no --auto-approve-as)."""


class Progress:
    """One line that redraws on a terminal; a line per phase otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stdout.isatty()
        self.started = time.monotonic()
        self._draw()

    def step(self, note: str = "") -> None:
        self.done += 1
        self._draw(note)

    def _draw(self, note: str = "") -> None:
        if not self.tty:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        sys.stdout.write(f"\r  {self.label:<22} [{bar}] {self.done:>3}/{self.total} {note:<40}")
        sys.stdout.flush()

    def close(self, summary: str) -> None:
        if self.tty:
            sys.stdout.write("\r" + " " * 110 + "\r")
        print(f"  {self.label:<22} {summary} ({time.monotonic() - self.started:.1f} s)", flush=True)


class Driver:
    """Streams items through a rollout as one requester, playing ``reviewers`` on what waits for them.

    ``signer``, where the policy wants signed acts: a person's key (or None), to sign the requester's
    submits and the reviewers' votes with."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        reviewers: list[str],
        *,
        task: str = TASK,
        version: str = VERSION,
        requester: str = REQUESTER,
        item: Callable[[str], dict[str, Any]] = lambda key: {"ticket_id": key},
        signer: Callable[[str], Ed25519PrivateKey | None] | None = None,
    ) -> None:
        self.client, self.settings, self.reviewers = client, settings, reviewers
        self.task, self.version, self.requester, self.item, self.signer = task, version, requester, item, signer
        self.rollout = rollout_id(task, version)
        self.tally = Tally()

    def sign(self, person: str, message: bytes) -> str | None:
        return sign(self.signer(person), message) if self.signer else None

    async def submit(self, key: str, requester: str | None = None) -> str:
        """Submit ``key`` as the rollout admits it now (signed where the policy wants); its run id."""
        admission = await admit(self.client, self.rollout, key)
        inp = RunInput(
            task=self.task, task_version=self.version, item_key=key, item=self.item(key),
            requester=requester or self.requester, mode=admission.mode, stage=admission.stage, rollout_id=self.rollout,
        )  # fmt: skip
        run_id = f"run-{inp.task}-{key}-{uuid.uuid4().hex[:8]}"
        inp = inp.model_copy(update={"signature": self.sign(inp.requester, submit_message(run_id, inp))})
        return await submit(self.client, self.settings.task_queue, inp, run_id=run_id)

    async def one(self, key: str) -> RunResult | None:
        run_id = await self.submit(key)
        handle: WorkflowHandle[Any, RunResult] = self.client.get_workflow_handle(run_id, result_type=RunResult)
        result = asyncio.ensure_future(handle.result())
        voted: set[tuple[str, str]] = set()
        while True:
            done, _ = await asyncio.wait({result}, timeout=0.25)
            if done:
                return result.result()
            try:
                status: RunStatus = await handle.query(GovernedRunWorkflow.status)
            except (RPCError, WorkflowQueryFailedError):
                continue  # finished (or busy) meanwhile: the result decides
            if status.exception is not None:  # waits for a person's decision, not a scripted reviewer's
                result.cancel()
                self.tally.waiting.append(run_id)
                return None
            if not status.pending:
                continue
            if not self.reviewers:
                result.cancel()
                self.tally.waiting.append(run_id)
                return None
            for pending in status.pending:  # one vote per pass: the run's status says whether quorum is met
                reviewer = next((r for r in self.reviewers if (pending.digest, r) not in voted), None)
                if reviewer is None:
                    continue
                voted.add((pending.digest, reviewer))
                review = Review(
                    reviewer=reviewer, action_digest=pending.digest, reason="govflow demo: scripted reviewer",
                    signature=self.sign(reviewer, signing_message(run_id, pending.digest, "approve")),
                )  # fmt: skip
                try:
                    await handle.signal(GovernedRunWorkflow.approve, review)
                except RPCError:
                    continue  # the run finished meanwhile
                self.tally.votes[reviewer] += 1

    async def stream(self, tickets: list[str], label: str, stop: Any = None) -> int:
        """Run ``tickets`` through the rollout, ``IN_FLIGHT`` at a time; ``stop()`` ends it early."""
        progress = Progress(label, len(tickets))
        queue = list(tickets)
        sent = 0

        async def lane() -> None:
            nonlocal sent
            while queue and not (stop and await stop()):
                if not queue:  # another lane took the last ticket while this one asked stop()
                    break
                ticket = queue.pop(0)
                sent += 1
                result = await self.one(ticket)
                if result is not None:
                    self.tally.results.append(result)
                progress.step(f"{ticket}: {result.mode} {result.outcome}" if result else f"{ticket}: waits")

        await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
        outcomes = Counter(f"{r.mode} {r.outcome}" for r in self.tally.results[-progress.done :])
        progress.close(", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing ran")
        return sent

    async def status(self) -> RolloutStatus:
        return await rollout_status(self.client, self.rollout)

    async def wait_for(self, predicate: Any, what: str, seconds: float = 30.0) -> RolloutStatus:
        deadline = time.monotonic() + seconds
        while True:
            status = await self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise GovflowError(f"the demo rollout did not reach {what} in {seconds:.0f} s: {status}")
            await asyncio.sleep(0.2)


# --- the demo ----------------------------------------------------------------------------------------------


async def _fresh_rollout(client: Client, settings: Settings) -> str:
    """A new demo rollout; an earlier one under the same id is ended first (its evidence chain continues)."""
    running = await running_rollout(client, TASK, VERSION)
    if running is not None:
        await client.get_workflow_handle(running).terminate("govflow demo started again")
    return await start_rollout(client, settings.task_queue, TASK, VERSION)


def ui_link(settings: Settings, query: str) -> str:
    """The Temporal UI's workflow list, filtered by ``query`` (local stack)."""
    base = f"http://127.0.0.1:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}/workflows"
    return f"{base}?query={urllib.parse.quote(query)}"


QUERIES = {
    "the paused rollout": f'GovflowTask = "{TASK}" AND GovflowPaused = true',
    "awaiting approval": "GovflowAwaitingApproval = true",
    "live canary runs": 'GovflowStage = "canary" AND GovflowMode = "live"',
}
"""What the summary tells operators to filter by in the Temporal UI (each is tested against the server)."""


async def run_demo(client: Client, settings: Settings, database_url: str, sor_dsn: str, reviewers: list[str]) -> int:
    from govflow.workers.deployments import set_current, worker_version
    from govflow.workers.worker import build_worker

    # Refused reads and failed activities are part of the story; the SDK would log each with a traceback.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    knob = Knob()
    registry = Registry()
    register_demo(registry, sor_dsn, knob)
    began = time.monotonic()
    async with EvidenceStore.open(database_url) as store:
        deployment, make_current = worker_version(settings)
        worker = build_worker(client, settings.task_queue, store, registry, deployment=deployment,
                     console=settings.console_url)  # fmt: skip
        async with worker:
            if deployment is not None and make_current:  # the local stack's: runs start on this build
                await set_current(client, deployment.deployment_name, deployment.build_id)
            wid = await _fresh_rollout(client, settings)
            drive = Driver(client, settings, reviewers)
            await drive.wait_for(lambda s: s.stage == "shadow", "its first stage")
            print(f"Rollout {wid}: shadow first (proposes, never writes), then canary (50% live).")
            # Contacts of every fifth ticket are in apac, outside the policy's crm grant: those tickets
            # are refused at the first read. Two of them come last, to show it.
            tickets = [f"T{i:04d}" for i in range(1, DEMO_TICKETS + 1) if i % 5 != 4]
            outside = [f"T{i:04d}" for i in (4, 9)]
            cursor = 0

            def take(n: int) -> list[str]:
                nonlocal cursor
                cursor += n
                return tickets[cursor - n : cursor]

            async def promoted() -> bool:
                return (await drive.status()).stage != "shadow"

            await drive.stream(take(SHADOW_ITEMS), "1. shadow", stop=promoted)
            status = await drive.wait_for(lambda s: s.stage == "canary", "canary (its shadow gate)", seconds=90)
            print(f"  gate passed: promoted to canary ({status.live_fraction:.0%} live); live writes need approval")
            if not reviewers:
                print("  (no --auto-approve-as: live runs wait for you; see the summary)")
            await drive.stream(take(CANARY_ITEMS), "2. canary")
            knob.degraded = DEGRADED_SHARE
            print(f"  now the model goes bad on purpose: {DEGRADED_SHARE:.0%} of answers low-confidence, off-topic")

            async def paused() -> bool:
                return (await drive.status()).paused

            await drive.stream(take(DEGRADED_ITEMS), "3. canary, degraded", stop=paused)
            status = await drive.wait_for(lambda s: s.paused, "a pause", seconds=60)
            leases_at_pause = status.leases_granted
            await drive.stream(take(AFTER_PAUSE_ITEMS) + outside, "4. after the pause")
            after = await drive.status()
            drive.tally.recorded = await store.approval_tally([r.run_id for r in drive.tally.results])
    await registry.aclose()
    _summary(settings, drive, status, after.leases_granted - leases_at_pause, time.monotonic() - began)
    return 0


def _summary(settings: Settings, drive: Driver, status: RolloutStatus, leases_after_pause: int, took: float) -> None:
    t = drive.tally
    by = Counter((r.mode, r.outcome) for r in t.results)
    print(f"\nSummary ({took:.0f} s)")
    print(f"  runs: {len(t.results)} finished" + (f", {len(t.waiting)} waiting for a reviewer" if t.waiting else ""))
    for (mode, outcome), n in sorted(by.items()):
        print(f"    {mode:<6} {outcome:<10} {n}")
    if t.votes:
        print("  approvals sent (Signal `approve`): " + ", ".join(f"{r} {n}" for r, n in sorted(t.votes.items())))
        recorded = ", ".join(f"{who} {n} {'accepted' if ok else 'refused'}" for who, ok, n in t.recorded)
        print(f"  approval attempts in the evidence: {recorded or 'none'}")
    if status.last_breach is not None:
        b = status.last_breach
        print(f"  PAUSED at stage {b.stage}: {status.pause_reason}")
        for v in b.verdicts:
            if v.method == "cusum" and v.statistic is not None and v.limit is not None:
                estimate = f"{v.estimate:.2f}" if v.estimate is not None else "-"
                print(
                    f"    {v.rule}: evidence of a drop {v.statistic:.1f} reached the {v.limit:.1f} that pauses "
                    f"(CUSUM); {estimate} over {v.n} runs in the stage, threshold {v.threshold}"
                )
                continue
            interval = f"[{v.low:.2f}, {v.high:.2f}]" if v.low is not None and v.high is not None else "-"
            estimate = f"{v.estimate:.2f}" if v.estimate is not None else "-"
            print(f"    {v.rule}: {estimate} over {v.n} runs, 95% interval {interval}, threshold {v.threshold}")
    print(f"  live writes leased after the pause: {leases_after_pause} (every later ticket ran in shadow)")
    print("\nHow a reviewer approves (what --auto-approve-as did for you):")
    print("  .venv/bin/govflow approvals list --as alice")
    print("  .venv/bin/govflow approve RUN_ID --as alice --action reply")
    print(
        '  or in the UI, on the run: Send a Signal `approve`, {"reviewer": "alice", "action_digest": "<from details>"}'
    )
    print("\nIn the Temporal UI (filter with these queries):")
    for label, query in QUERIES.items():
        print(f"  {label:<19} {query}\n  {'':<19} {ui_link(settings, query)}")
    print('  Resume there with Signal `resume`, payload {"operator": "omar"}; or:')
    print(f"    .venv/bin/govflow rollout resume --task {TASK} --version {VERSION} --as omar")
    sample = next((r.run_id for r in t.results if r.mode == "live" and r.outcome == "published"), None)
    sample = sample or (t.results[0].run_id if t.results else "RUN_ID")
    print("\nEvidence:")
    print(f"  .venv/bin/govflow evidence show {sample}")
    print(f"  .venv/bin/govflow evidence verify {sample}")
    print(f"  .venv/bin/govflow evidence export {drive.rollout} --rollout --out evidence-demo")
    for run_id in t.waiting[:3]:
        print(f"  waiting: .venv/bin/govflow approve {run_id} --as alice   (see `govflow approvals list --as alice`)")
    print("\nEverything keeps running (a background worker serves the runs) until `make stack-down`.")
