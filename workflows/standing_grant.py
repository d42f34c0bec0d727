"""StandingGrantWorkflow: one standing approval, from its proposal to its end (revoked, expired).

Its id is the grant's id (``grant-...``). The person who proposes it is its first granter (the
``grant`` update); the rule's quorum of distinct eligible approvers activates it. From then on runs
claim uses of it (``RunActivities.claim_grant``) until it is revoked (``revoke``: anyone who may
approve the rule) or expires. Every act, accepted or refused, is in its own chain (stream ``grant``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities import names
    from govflow.activities import run_messages as rm
    from govflow.activities.evidence import events as ev
    from govflow.activities.grant_activities import GrantActivities, GrantRecord
    from govflow.activities.rollout_activities import RolloutActivities
    from govflow.activities.rollout_messages import PolicyRequest
    from govflow.policies import AttemptOutcome, Policy, policy_from_json
    from govflow.policies.standing import GrantTerms, judge_grant, may_revoke, quorum, terms_problem
    from govflow.workflows import handlers
    from govflow.workflows.inputs import Note, PersonName, Read, Token, field_text, read
    from govflow.workflows.ledger import EVIDENCE_RETRY, LOCAL, RETRY


class GrantInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    terms: GrantTerms
    proposed_by: PersonName


class GrantAct(BaseModel):
    """A person's act on a grant, as one JSON payload: ``{"person": "alice", "signature": "..."}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: PersonName
    signature: Token | None = None
    note: Note = ""


_ACT_EXAMPLE = '{"person": "alice", "signature": "<base64>", "note": "why"}'


class GrantStatus(BaseModel):
    grant_id: str
    terms: GrantTerms
    status: str = Field(description="proposed, active, revoked, expired or refused")
    granted_by: list[str]
    quorum: int
    reason: str = ""


@workflow.defn(name=names.STANDING_GRANT)
class StandingGrantWorkflow:
    @workflow.init
    def __init__(self, inp: GrantInput) -> None:
        self._inp = inp
        self._id = workflow.info().workflow_id
        self._policy: Policy | None = None
        self._status = "proposed"
        self._granted_by: list[str] = []
        self._reason = ""
        self._seq = 1
        self._lock = asyncio.Lock()
        self._ready = False

    @workflow.run
    async def run(self, inp: GrantInput) -> str:
        setup = await workflow.execute_local_activity_method(
            RolloutActivities.load_policy,
            PolicyRequest(task=inp.terms.task, task_version=inp.terms.task_version),
            start_to_close_timeout=LOCAL,
            retry_policy=RETRY,
        )
        self._policy = policy = policy_from_json(setup.policy_text())
        t = inp.terms
        proposed = ev.GrantProposed(
            task=t.task, task_version=t.task_version, rule=t.rule, match=dict(t.match), max_uses=t.max_uses,
            expires_at=t.expires_at, proposed_by=inp.proposed_by, reason=t.reason, quorum=quorum(policy, t),
        )  # fmt: skip
        problem = terms_problem(policy, t, workflow.now())
        if problem:
            self._status, self._reason = "refused", problem
            await self._record([proposed, ev.GrantEnded(status="refused", by=inp.proposed_by, reason=problem)])
            self._ready = True
            return f"refused: {problem}"
        await self._record([proposed], change="propose")
        self._ready = True
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._status in ("revoked", "refused"), timeout=t.expires_at - workflow.now()
            )
        if self._status not in ("revoked", "refused"):
            async with self._lock:
                self._status, self._reason = "expired", f"expired at {t.expires_at.isoformat()}"
                await self._record_locked([ev.GrantEnded(status="expired", reason=self._reason)], change="expire")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return f"{self._status}: {self._reason}" if self._reason else self._status

    # Handlers take ``*args``: anyone can send anything (see workflows/handlers.py). None of them raises;
    # an act that cannot be read is refused and recorded like any other.

    @handlers.update(name=names.GRANT, description='Grant it: {"person": "alice", "signature": "<base64>"}')
    async def grant(self, *args: Any) -> AttemptOutcome:
        await workflow.wait_condition(lambda: self._ready)
        assert self._policy is not None
        got = read(GrantAct, args, _ACT_EXAMPLE)
        async with self._lock:
            if got.value is None:
                return await self._refuse_unreadable("grant", args, got)
            act = got.value
            if self._status not in ("proposed", "active"):
                outcome = AttemptOutcome(accepted=False, code="closed", reason=f"{self._id} is {self._status}")
            elif self._status == "active":
                outcome = AttemptOutcome(accepted=False, code="closed", reason=f"{self._id} is already active")
            else:
                outcome = judge_grant(self._policy, self._id, self._inp.terms, act.person, act.signature,
                                      self._granted_by)  # fmt: skip
            rows: list[ev.Event] = [ev.GrantAct(person=act.person, act="grant", accepted=outcome.accepted,
                                                reason=outcome.reason, signed=act.signature is not None,
                                                signature=act.signature, note=act.note)]  # fmt: skip
            change = "none"
            if outcome.accepted:
                self._granted_by.append(act.person)
                if len(self._granted_by) >= quorum(self._policy, self._inp.terms):
                    self._status = "active"
                    rows.append(ev.GrantActivated(granted_by=list(self._granted_by)))
                    change = "activate"
            await self._record_locked(rows, change=change)
        return outcome

    @handlers.update(name=names.REVOKE_GRANT, description='Revoke it: {"person": "alice", "note": "why"}')
    async def revoke(self, *args: Any) -> AttemptOutcome:
        await workflow.wait_condition(lambda: self._ready)
        assert self._policy is not None
        got = read(GrantAct, args, _ACT_EXAMPLE)
        async with self._lock:
            if got.value is None:
                return await self._refuse_unreadable("revoke", args, got)
            act = got.value
            if self._status not in ("proposed", "active"):
                outcome = AttemptOutcome(accepted=False, code="closed", reason=f"{self._id} is {self._status}")
            elif not may_revoke(self._policy, self._inp.terms, act.person):
                outcome = AttemptOutcome(accepted=False, code="no_authority",
                                         reason=f"{act.person} may not approve rule {self._inp.terms.rule}, "
                                         "so may not revoke a grant for it")  # fmt: skip
            else:
                outcome = AttemptOutcome(accepted=True, code="accepted", reason=f"{act.person} revoked {self._id}")
            rows: list[ev.Event] = [ev.GrantAct(person=act.person, act="revoke", accepted=outcome.accepted,
                                                reason=outcome.reason, note=act.note)]  # fmt: skip
            change = "none"
            if outcome.accepted:
                self._status, self._reason = "revoked", act.note or f"revoked by {act.person}"
                rows.append(ev.GrantEnded(status="revoked", by=act.person, reason=act.note))
                change = "revoke"
            await self._record_locked(rows, change=change, by=act.person, reason=act.note)
        return outcome

    async def _refuse_unreadable(self, act: Literal["grant", "revoke"], args: Any, got: Read[Any]) -> AttemptOutcome:
        """An act whose payload does not read: refused and recorded, with the payload as it came."""
        reason = f"unreadable: {got.problem}; payload: {got.raw}"
        person = field_text(args, "person") or "(unreadable)"
        await self._record_locked([ev.GrantAct(person=person, act=act, accepted=False, reason=reason)])
        return AttemptOutcome(accepted=False, code="unreadable", reason=reason)

    @workflow.query(name=names.GRANT_STATUS, description="The grant's terms, status and granters")
    def status(self) -> GrantStatus:
        policy = self._policy
        return GrantStatus(
            grant_id=self._id, terms=self._inp.terms, status=self._status, granted_by=list(self._granted_by),
            quorum=quorum(policy, self._inp.terms) if policy else 0, reason=self._reason,
        )  # fmt: skip

    async def _record(self, events: list[Any], change: str = "none") -> None:
        async with self._lock:
            await self._record_locked(events, change=change)

    async def _record_locked(self, events: list[Any], *, change: str = "none", by: str = "", reason: str = "") -> None:
        """State change first, then the rows: a row never claims what the table does not hold yet."""
        record = GrantRecord(
            grant_id=self._id, terms=self._inp.terms, seq=self._seq, at=workflow.now(),
            rows=[rm.EvidenceItem.of(e) for e in events], change=change, granted_by=list(self._granted_by),
            by=by, reason=reason,
        )  # fmt: skip
        self._seq = await workflow.execute_activity_method(
            GrantActivities.record_grant, record, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=EVIDENCE_RETRY,
        )  # fmt: skip
