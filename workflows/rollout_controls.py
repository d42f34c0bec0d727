"""What a rollout does with an operator's command (pause, resume, promote, rollback), read from a signal
(the Temporal UI) or an update (the CLI): read as untrusted, judged by the policy, applied, recorded.
Failing toward safety: an unreadable pause or rollback pauses; an unreadable resume or promote is refused.

A part of RolloutWorkflow (its base class), kept in a room of its own; workflow code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities.evidence import events as ev
    from govflow.policies import Policy
    from govflow.policies.gates import Stage
    from govflow.workflows import rollout_rules as rules
    from govflow.workflows.inputs import Read, field_text, read
    from govflow.workflows.ledger import RolloutLedger
    from govflow.workflows.rollout_api import Control, ControlAnswer, RollbackRequest, RolloutState

_CONTROL_EXAMPLE = '{"operator": "omar", "reason": "..."}'


class OperatorControls:
    """The operator commands of RolloutWorkflow; the rest of the rollout is the workflow's."""

    if TYPE_CHECKING:
        _state: RolloutState
        _ledger: RolloutLedger
        _ready: bool
        _dirty: bool
        _fresh_window: bool

        @property
        def policy(self) -> Policy: ...

        @property
        def _stage(self) -> Stage: ...

        def _show(self) -> None: ...

        async def _record(self, event: ev.Event) -> None: ...

        async def _move(self, index: int, kind: str, reason: str) -> None: ...

    def _answer(self, accepted: bool, reason: str) -> ControlAnswer:
        return ControlAnswer(accepted=accepted, reason=reason, stage=self._stage.name, paused=self._state.paused)

    async def _pause(self, control: Control, via: str, raw: str = "") -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        if not self._state.paused:
            self._state.paused = True
            self._state.control_seq += 1
            self._state.pause_reason = f"paused by {control.operator}: {control.reason}".rstrip(": ")
            self._show()
        await self._ledger.set_fence(True)
        await self._record(
            ev.Paused(operator=control.operator, reason=control.reason, via=via, payload_sent=raw or None)
        )
        return self._answer(True, self._state.pause_reason)

    async def _unreadable(self, command: str, got: Read[Any], args: Any, via: str) -> ControlAnswer:
        """Fail toward safety: an unreadable pause or rollback pauses; an unreadable resume or promote
        is refused. Either way the attempt is recorded with its raw payload."""
        who = field_text(args, "operator") or "(unknown)"
        if command in ("pause", "rollback"):
            control = Control.model_construct(
                operator=f"{who} (unverified)", reason=f"unreadable {command}: {got.problem}"
            )
            return await self._pause(control, via, raw=got.raw)
        await workflow.wait_condition(lambda: self._ready)
        answer = self._answer(False, f"unreadable {command}: {got.problem}")
        refused = ev.Resumed if command == "resume" else ev.PromotionRefused
        await self._record(refused(operator=who, accepted=False, reason=answer.reason, via=via, payload_sent=got.raw))
        return answer

    async def _resume(self, control: Control, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        if refusal := rules.control_refusal(self.policy, self._state, "resume", control, self._ledger.rollout_id):
            answer = self._answer(False, refusal)
        else:
            self._state.paused = False
            self._state.control_seq += 1
            self._state.pause_reason = ""
            reason = f"resumed by {control.operator}"
            if self._fresh_window:
                # A fresh window: the runs that tripped the pause would only trip it again at once.
                self._state.window = []
                self._state.gates = {}
                reason += "; the quality window starts afresh"
            self._dirty = True
            answer = self._answer(True, reason)
        await self._record(
            ev.Resumed(operator=control.operator, accepted=answer.accepted, reason=answer.reason, via=via)
        )
        if answer.accepted:
            await self._ledger.set_fence(False)  # after the resume is recorded: writes never precede it
        self._show()
        return answer

    async def _promote(self, control: Control, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        if refusal := rules.control_refusal(self.policy, self._state, "promote", control, self._ledger.rollout_id):
            answer = self._answer(False, refusal)
        else:
            await self._move(self._state.stage_index + 1, "promoted", f"promoted by {control.operator}")
            answer = self._answer(True, f"promoted to {self._stage.name} by {control.operator}")
        if not answer.accepted:
            await self._record(ev.PromotionRefused(operator=control.operator, reason=answer.reason, via=via))
        return answer

    async def _rollback(self, request: RollbackRequest, via: str) -> ControlAnswer:
        """A stage rollback is open to any operator (it only reduces exposure); undoing the live writes
        writes to the system of record, so it takes the authority the policy names (and a signature where
        it asks), judged against the stage the request was signed at, and recorded either way."""
        await workflow.wait_condition(lambda: self._ready)
        governed = request.data and workflow.patched("governed-restore")
        rollout_id = self._ledger.rollout_id
        refusal = rules.restore_refusal(self.policy, self._state, request, rollout_id) if governed else None
        target = 0 if request.to == "shadow" else max(0, self._state.stage_index - 1)
        await self._move(target, "rollback", f"rolled back by {request.operator}: {request.reason}".rstrip(": "))
        if not request.data:
            return self._answer(True, f"rolled back to {self._stage.name}")
        if governed:
            asked = ev.RestoreRequested(operator=request.operator, reason=refusal or request.reason, via=via,
                                        accepted=refusal is None, signed=bool(request.signature))  # fmt: skip
            await self._record(asked)
            if refusal is not None:
                stage = self._stage.name
                return self._answer(False, f"rolled back to {stage}; undoing its live writes is refused: {refusal}")
        back, restored, conflicts = await self._ledger.restore_data(request.since)
        return self._answer(True, f"rolled back to {self._stage.name}; {back} records back as before ({restored} "
                            f"restored, {back - restored} already were), {conflicts} conflicts for review")  # fmt: skip

    async def _control(self, command: str, args: Any, via: str) -> ControlAnswer:
        """Every operator command, from a signal (the Temporal UI) or an update (the CLI): read, then act."""
        await workflow.wait_condition(lambda: self._ready)
        if command == "rollback":
            got_rollback = read(RollbackRequest, args, '{"operator": "alice", "to": "previous", "reason": "..."}')
            if got_rollback.value is not None:
                return await self._rollback(got_rollback.value, via)
            return await self._unreadable(command, got_rollback, args, via)
        got = read(Control, args, _CONTROL_EXAMPLE)
        if got.value is None:
            return await self._unreadable(command, got, args, via)
        act = {"pause": self._pause, "resume": self._resume, "promote": self._promote}[command]
        return await act(got.value, via)
