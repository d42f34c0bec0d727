"""What operators and reviewers read in the Temporal UI: each workflow's current details, as Markdown.

Pure functions of the workflow's state; the workflows call ``workflow.set_current_details`` with them.
Ids and names here come from outside (a run id, an item key, a requester, an operator's reason): they
are escaped for Markdown (activities/escaping.py), so none of them can become a link or break a line.
"""

from __future__ import annotations

from collections.abc import Iterable

from govflow.activities.escaping import console_exception_url, console_url, md_code, md_text, shell_command
from govflow.policies import WindowVerdict
from govflow.policies.gates import Stage
from govflow.workflows.approvals import ActionState
from govflow.workflows.rollout_api import RolloutState
from govflow.workflows.run_api import RunInput


def run_details(run_id: str, inp: RunInput, phase: str, outcome: str | None, exception: str | None,
                actions: Iterable[ActionState], console: str | None = None) -> str:  # fmt: skip
    """``console``: the reviewer console's origin; each open action and a waiting exception link to its page
    there (the URL percent-encodes the ids, so none of them can break the link)."""
    actions = list(actions)
    lines = [
        f"**{md_text(inp.task)} v{md_text(inp.task_version)}** · item {md_code(inp.item_key)} · mode **{inp.mode}** · "
        f"stage {md_text(inp.stage)} · requested by {md_text(inp.requester)}",
        "",
        f"Phase: **{md_text(phase)}**" + (f" · outcome **{outcome}**" if outcome else ""),
        "",
        f"Evidence: {md_code(shell_command('govflow', 'evidence', 'show', run_id))}",
    ]
    if exception:
        lines += ["", f"Exception: {md_text(exception)}", "Signal `resolve_exception` to retry or discard."]
        if console:
            lines.append(f"[Decide it in the reviewer console]({console_exception_url(console, run_id)})")
    if actions:
        # A line each, not a Markdown table: the Temporal UI's details renderer runs table cells together
        # (and shows no lists: hence the bullet characters).
        lines += ["", "Actions:"]
        for s in actions:
            gates = []
            for g in s.gates:
                gate = f"rule {md_text(g.gate.rule)} {len(g.approved_by)}/{g.gate.quorum} {g.status}"
                if g.status == "open":
                    signed = ", signed" if g.gate.signature_required else ""
                    gate += (f" (may approve: {md_text(', '.join(g.gate.eligible))}{signed}; "
                             f"until {g.gate.expires_at.strftime('%Y-%m-%d %H:%M UTC')})")  # fmt: skip
                gates.append(gate)
            link = console_url(console, run_id, s.action.action_id) if console else ""
            review = f" · [review it in the console]({link})" if link else ""
            lines.append(
                f"• **{md_text(s.action.action_id)}** {md_text(s.action.target)} {md_text(s.action.record_id or '')}: "
                f"{s.decision}"
                + (f"; {'; '.join(gates)}" if gates else "")
                + f"; digest `{s.digest}`"
                + (review if s.open else "")
            )
        if any(s.open for s in actions):
            lines += ["", 'Approve with Signal `approve`: `{"reviewer": "<you>", "action_digest": "<digest>"}`']
    return "\n".join(lines)


def rollout_details(task: str, task_version: str, stage: Stage, state: RolloutState,
                    verdicts: Iterable[WindowVerdict]) -> str:  # fmt: skip
    lines = [
        f"**{task} v{task_version}** · stage **{stage.name}** "
        f"({stage.live_fraction:.0%} live) · {state.runs_in_stage} runs in stage",
        "",
        f"**PAUSED**: {md_text(state.pause_reason)}" if state.paused else "Running.",
        "",
        "Quality gates:",
    ]
    for v in verdicts:  # a line each, not a Markdown table: the Temporal UI runs table cells together
        parts = [v.status, f"{v.n} runs"]
        if v.estimate is not None:
            parts.append(f"estimate {v.estimate:.3f}")
        if v.low is not None and v.high is not None:
            parts.append(f"interval [{v.low:.3f}, {v.high:.3f}]")
        parts.append(f"threshold {v.threshold}")
        if v.limit is not None and v.statistic is not None:
            parts.append(f"evidence of a drop {v.statistic:.1f} of the {v.limit:.1f} that pauses")
        lines.append(f"• **{v.rule}**: {' · '.join(parts)}")
    if state.last_breach:
        b = state.last_breach
        lines += [
            "",
            f"Last breach at {b.at.isoformat()} in {b.stage}: {b.action} ({', '.join(v.rule for v in b.verdicts)})",
        ]
    if state.promotion_requested:
        lines += ["", f"Promotion waits for: {', '.join(stage.promoters)} (Signal `promote`)"]
    lines += [
        "",
        'Signals: `pause` / `rollback` (anyone), `resume` / `promote` (promoters): `{"operator": "<you>"}`',
    ]
    return "\n".join(lines)
