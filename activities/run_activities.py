"""The activities of a governed run: all of its I/O, each idempotent."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.authority import RolloutAuthority, refuse_if_stopped
from govflow.activities.common import evidence_failure, fail
from govflow.activities.connectors.connector import ConnectorError, WriteRequest, WriteResult
from govflow.activities.connectors.guard import ScopedConnectors, ScopeViolation
from govflow.activities.evidence.events import (
    Event,
    LeaseRefused,
    RunStarted,
    RunStartRefused,
    ScopeRefused,
    TouchedRecord,
    WindowLimitRefused,
)
from govflow.activities.evidence.policy_ledger import record_policy_use
from govflow.activities.evidence.store import FenceHold
from govflow.activities.models.chat import InvalidModelOutput, ModelError, ModelRequest, ModelResponse
from govflow.activities.names import REPORT, ErrorType
from govflow.activities.run_messages import (
    GATHER_FAILURES,
    Appended,
    EvidenceItem,
    GatherFailure,
    GatherInput,
    GatherResult,
    GrantClaim,
    OpenRun,
    ProposeInput,
    ProposeResult,
    PublishAll,
    PublishedAll,
    PublishRefusal,
    RecordEvidence,
    RunOpened,
    StartRun,
    WindowCheck,
    WindowTotal,
    Written,
)
from govflow.activities.tasks.contract import Proposal, TaskInputError, TaskMistake, task_mistake, wrong_type
from govflow.policies import Action, signed_act_problem
from govflow.policies.terms import WRITE_OPERATIONS


class _RecordingModel:
    """Keeps every response, so the evidence names the model, latency and tokens."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[ModelResponse] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response: ModelResponse = await self._inner.complete(request)
        self.calls.append(response)
        return response


class RunActivities(RolloutAuthority):
    @activity.defn(name="govflow.open_run")
    async def open_run(self, req: OpenRun) -> RunOpened:
        """A new run's first activity: its policy, its admission, a gather, and a proposal from what it
        gathered. A model that fails here leaves the proposal to the run's propose activity.
        A submit whose signature the policy refuses is not admitted: it takes no slot (the run refuses it).
        A run refused (that, or no rollout where the policy requires one) reads nothing: the workflow
        decides the same from the same policy and admission. A gather's scope refusal or input problem comes
        back as data (``gather_failure``), with the setup the workflow needs to handle it."""
        setup = self._setup(req.start.task, req.start.task_version)
        policy = self._registration(req.start.task, req.start.task_version).policy
        refused = await self._refuse_a_second_start(req.start)
        if refused:
            return RunOpened(setup=setup, refused_start=refused)
        await self._record_policy(req.start)
        message = req.submit_message.encode()
        if signed_act_problem(policy, "submit", req.start.requester, req.submit_signature, message):
            return RunOpened(setup=setup)
        admission = await self.admit(req.admit)
        if admission.lacks_rollout(req.admit.requested, policy.rollout.required):
            return RunOpened(setup=setup, admission=admission)
        try:
            gathered = await self.gather(req.gather)
        except ApplicationError as exc:
            if exc.non_retryable and exc.type in GATHER_FAILURES:
                failure = GatherFailure(type=exc.type, message=exc.message, details=list(exc.details))
                return RunOpened(setup=setup, admission=admission, gather_failure=failure)
            raise
        proposed: ProposeResult | None = None
        proposing = ProposeInput(run_id=req.gather.run_id, task=req.gather.task,
                                 task_version=req.gather.task_version, context=gathered.context)  # fmt: skip
        try:
            proposed = await self.propose(proposing)
        except ApplicationError as exc:
            if exc.type != ErrorType.MODEL:
                raise
            # The run's propose activity asks again, with its own retries (not this admission's and reads').
            activity.logger.warning("run %s: the model failed while opening (%s)", req.gather.run_id, exc)
        return RunOpened(setup=setup, admission=admission, gathered=gathered, proposed=proposed)

    async def _record_policy(self, start: StartRun) -> None:
        """The policy version this run decides under, in its own chain (once per worker and task version):
        `govflow policy show DIGEST` prints the text that decided."""
        reg = self._registration(start.task, start.task_version)
        key = (reg.digest, start.task, start.task_version)
        recorded: set[tuple[str, str, str]] = self.__dict__.setdefault("_policies_recorded", set())
        if key in recorded:
            return
        try:
            await record_policy_use(self._store, reg.policy, reg.digest, reg.policy_json, task=start.task,
                                    version=start.task_version, run_id=start.run_id, at=start.at)  # fmt: skip
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        recorded.add(key)

    async def _refuse_a_second_start(self, start: StartRun) -> str:
        """One run id, one run: a start under an id whose chain exists (a finished run's input replayed
        under its id) is refused before it is admitted or reads anything, and recorded in a chain of its
        own, so the first run's chain and its anchor stay as they were. Empty when the id is new."""
        try:
            if await self._store.run(start.run_id) is None:
                return ""
            first = await self._store.last_event(start.run_id, RunStarted)
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        first_execution = first.temporal_run_id if isinstance(first, RunStarted) else ""
        execution = activity.info().workflow_run_id or ""
        if first_execution and first_execution == execution:  # this execution's own chain: not a second start
            return ""
        reason = (
            f"run id {start.run_id} already has evidence (its first execution {first_execution or 'unrecorded'}): "
            "a run id is used once; submit the item again under a new run id"
        )
        refusal = RunStartRefused(
            run_id=start.run_id, temporal_run_id=execution, first_temporal_run_id=first_execution, task=start.task,
            task_version=start.task_version, item_key=start.item_key, requester=start.requester, reason=reason,
        )  # fmt: skip
        stream_id = f"{start.run_id}@{execution}"
        await self._append_chain(
            "refused_start", stream_id, start.task, 1, [(refusal.kind, refusal.payload(), start.at)]
        )
        activity.logger.warning("refused a second start of run %s: %s", start.run_id, reason)
        return reason

    @activity.defn(name="govflow.append_run_evidence")
    async def append_run_evidence(self, rec: RecordEvidence) -> Appended:
        """Append items at ``seq``...; the same input always stores the same rows (safe to retry)."""
        reg = self._registration(rec.task, rec.task_version)
        run = self._run_record(rec.start, rec.start.policy_digest or reg.digest) if rec.start else None
        head = await self._append(
            rec.task, rec.run_id, rec.seq, rec.at, rec.items, frozenset(reg.policy.evidence.redact_fields), run
        )
        return Appended(next_seq=rec.seq + len(rec.items), head=head)

    @activity.defn(name="govflow.gather")
    async def gather(self, inp: GatherInput) -> GatherResult:
        reg = self._registration(inp.task, inp.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        try:
            item = reg.task.item_model.model_validate(inp.item)
        except ValueError as exc:
            raise fail(exc, ErrorType.INCOMPLETE_INPUT) from exc
        try:
            context = await reg.task.gather(item, io)
        except ScopeViolation as exc:
            raise fail(exc, ErrorType.SCOPE_VIOLATION, details=exc.refusal.model_dump()) from exc
        except TaskInputError as exc:
            raise fail(exc, ErrorType(exc.kind)) from exc
        except ConnectorError as exc:
            raise fail(exc, ErrorType.CONNECTOR, retryable=exc.retryable) from exc
        except Exception as exc:  # the task's own bug: a person decides, no retry loop
            raise fail(TaskMistake(task_mistake(reg.task, "gather", exc)), ErrorType.TASK_ERROR) from exc
        if not isinstance(context, reg.task.context_model):
            raise fail(
                TaskMistake(wrong_type(reg.task, "gather", context, reg.task.context_model)), ErrorType.TASK_ERROR
            )
        return GatherResult(context=context.model_dump(mode="json"), reads=io.reads)

    @activity.defn(name="govflow.propose")
    async def propose(self, inp: ProposeInput) -> ProposeResult:
        reg = self._registration(inp.task, inp.task_version)
        model = _RecordingModel(reg.model)
        context = reg.task.context_model.model_validate(inp.context)
        try:
            proposal = await reg.task.propose(context, model)
        except InvalidModelOutput as exc:
            return ProposeResult(invalid=str(exc), calls=model.calls)
        except ModelError as exc:
            raise fail(exc, ErrorType.MODEL, retryable=exc.retryable) from exc
        except Exception as exc:  # the task's own bug: a person decides, no retry loop
            return ProposeResult(task_error=task_mistake(reg.task, "propose", exc), calls=model.calls)
        if not isinstance(proposal, Proposal):
            return ProposeResult(task_error=wrong_type(reg.task, "propose", proposal, Proposal), calls=model.calls)
        return ProposeResult(
            actions=proposal.actions,
            scores=proposal.scores,
            proposal=proposal.model_dump(mode="json"),
            calls=model.calls,
        )

    @activity.defn(name="govflow.publish_all")
    async def publish_all(self, inp: PublishAll) -> PublishedAll:
        """Write a live run's approved actions in order, each through the scope guard, and record them.

        Idempotency key per write = run id + action id: a retry after a crash between a write and its
        evidence finds the write committed and records it; a record is written once. The first write
        that has not happened asks for the lease, then holds the fence until the last write returns: a
        pause waits for these writes and no write starts after it. The run's pending rows, the touched
        records and ``then`` commit in the fence's own transaction (one commit per run). A write refused
        by the scope guard or its rollout is recorded in that commit (writes after it are not attempted)
        and named in the result; ``then`` is left out.
        """
        done = await self._publish_writes(inp)
        # The run is finished once ``then`` commits: its rollout hears so now, not a workflow task later.
        reported = False
        if done.refused is None and inp.then and inp.report is not None and inp.rollout_id and self._client:
            try:
                await self._client.get_workflow_handle(inp.rollout_id).signal(REPORT, inp.report)
                reported = True
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise  # retried: the writes are found written, the rows stored, and the nudge sent again
        return PublishedAll(
            written=[Written(action_id=a, **r.model_dump()) for a, r in done.results.items()],
            refused=done.refused, reported=reported, next_seq=done.next_seq, head=done.head,
        )  # fmt: skip

    async def _publish_writes(self, inp: PublishAll) -> _Published:
        reg = self._registration(inp.task, inp.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        redact_fields = frozenset(reg.policy.evidence.redact_fields)
        run = self._run_record(inp.start, inp.start.policy_digest or reg.digest) if inp.start else None
        requests = [_write_request(inp.run_id, w.action) for w in inp.writes]
        results: dict[str, WriteResult] = {}
        refused: tuple[PublishRefusal, Event] | None = None
        current = ""  # the action being written
        retried = activity.info().attempt > 1
        async with AsyncExitStack() as stack:
            hold: FenceHold | None = None
            try:
                for w, request in zip(inp.writes, requests, strict=True):
                    action, current = w.action, w.action.action_id
                    # A retried publish whose write already committed records it as written, whatever the
                    # rollout says now; only a write that has not happened needs authority. A first attempt
                    # has written nothing (a key met anyway is answered by the system's own idempotency).
                    result = await io.written(action.system, request) if retried else None
                    if result is None:
                        if hold is None:
                            hold = await self._hold_fence(inp, stack)
                        refuse_if_stopped(hold.stopped, w.grant)
                        if w.window is not None:
                            await self._hold_window(hold, w.window)
                        result = await io.write(action.system, request)
                    results[action.action_id] = result
            except ScopeViolation as exc:
                error = fail(exc, ErrorType.SCOPE_VIOLATION, details=exc.refusal.model_dump())
                event: Event = ScopeRefused.model_validate(exc.refusal.model_dump())
                refused = (PublishRefusal(action_id=current, reason=error.message), event)
            except ApplicationError as exc:
                refusal = PublishRefusal(action_id=current, reason=exc.message)
                if exc.type == ErrorType.WINDOW_LIMIT:
                    rule = next((w.window.rule for w in inp.writes if w.action.action_id == current and w.window), "")
                    prior = str(exc.details[0])
                    event = WindowLimitRefused(action_id=current, rule=rule, reason=exc.message, prior=prior)
                    refusal = refusal.model_copy(update={"window_rule": rule, "window_prior": prior})
                elif exc.type == ErrorType.LEASE_REFUSED:
                    event = LeaseRefused(rollout_id=inp.rollout_id, action_id=current, reason=exc.message)
                else:
                    raise
                refused = (refusal, event)
            except ConnectorError as exc:
                raise fail(exc, ErrorType.CONNECTOR, retryable=exc.retryable) from exc
            except (OSError, asyncpg.PostgresError) as exc:  # the fence's own database (the evidence one)
                raise evidence_failure(exc) from exc
            items = list(inp.before)
            items += [
                EvidenceItem.of(_touched(w.action, r.idempotency_key, results[w.action.action_id]))
                for w, r in zip(inp.writes, requests, strict=True) if w.action.action_id in results
            ]  # fmt: skip
            if refused is None:
                items += inp.then
            else:
                items.append(EvidenceItem.of(refused[1]))
            batch = self._run_batch(inp.run_id, inp.seq, inp.at, items, redact_fields)
            appended = await self._append_batch("run", batch, run, within=hold) if batch else []
        await self._count(inp.task, batch, appended)
        head = appended[-1].hash if appended else ""
        return _Published(
            results=results, refused=refused[0] if refused else None,
            next_seq=inp.seq + len(items), head=head,
        )  # fmt: skip

    @activity.defn(name="govflow.window_total")
    async def window_total(self, query: WindowTotal) -> str:
        """What a limits' window already holds for one group (a decimal, as text)."""
        try:
            return str(await self._store.pool.fetchval(_WINDOW, *_window_args(query)))
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc

    @staticmethod
    async def _hold_window(hold: FenceHold, check: WindowCheck) -> None:
        """Count the window again inside the write's evidence transaction, under a lock on its group held to
        its commit (the touched record commits there): of two runs racing, the second counts the first."""
        group = f"window:{check.system}:{check.resource}:{check.by}:{check.value}"
        await hold.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", group)
        prior = Decimal(str(await hold.conn.fetchval(_WINDOW, *_window_args(check))))
        total = prior + Decimal(check.amount)
        if total > Decimal(check.cap):
            raise ApplicationError(
                f"{check.by} {check.value} would hold {total:,.2f} {check.currency} in the window with this write, "
                f"above the {Decimal(check.cap):,.2f} {check.currency} its approvers may approve under rule "
                f"{check.rule}: it needs approval by someone whose limit covers the total",
                str(prior), type=ErrorType.WINDOW_LIMIT, non_retryable=True,
            )  # fmt: skip

    @activity.defn(name="govflow.claim_grant")
    async def claim_grant(self, claim: GrantClaim) -> str | None:
        """A use of a live standing approval covering the action, or None (people decide). Retried, the same
        action gets the same use back: a use is never spent twice."""
        try:
            return await self._store.claim_grant(
                claim.task, claim.task_version, claim.rule, claim.fields, claim.requester, claim.run_id,
                claim.action_id, claim.at,
            )  # fmt: skip
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc

    def all(self) -> list[Any]:
        return [
            self.open_run, self.append_run_evidence, self.gather, self.propose, self.publish_all, self.claim_grant,
            self.window_total,
        ]  # fmt: skip


# The amounts written live to one group within a window (a field that is not a number counts nothing).
_WINDOW = """
SELECT coalesce(sum(CASE WHEN t.after_image->>$3 ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN (t.after_image->>$3)::numeric END), 0)
FROM touched_records t JOIN evidence_events e ON e.stream = 'run' AND e.stream_id = t.run_id AND e.seq = t.seq
WHERE t.system = $1 AND t.resource = $2 AND t.mode = 'live' AND t.after_image->>$4 = $5 AND e.occurred_at >= $6
"""


def _window_args(q: WindowTotal) -> tuple[Any, ...]:
    return (q.system, q.resource, q.amount_field, q.by, q.value, q.since)


@dataclass(frozen=True)
class _Published:
    results: dict[str, WriteResult]
    refused: PublishRefusal | None
    next_seq: int
    head: str


def _write_request(run_id: str, action: Action) -> WriteRequest:
    if action.operation not in WRITE_OPERATIONS or action.record_id is None:
        raise ApplicationError(
            f"action {action.action_id} ({action.target}) is not a write with a record id",
            type=ErrorType.INVALID_ACTION,
            non_retryable=True,
        )
    return WriteRequest(
        resource=action.resource, record_id=action.record_id, operation=action.operation, fields=action.fields,
        idempotency_key=f"{run_id}:{action.action_id}",
    )  # fmt: skip


def _touched(action: Action, key: str, result: WriteResult) -> TouchedRecord:
    return TouchedRecord(
        action_id=action.action_id, system=action.system, resource=action.resource, record_id=str(action.record_id),
        operation=action.operation, mode="live", idempotency_key=key, before_image=result.before,
        after_image=result.after,
    )  # fmt: skip
