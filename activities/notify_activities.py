"""Delivering announcements of pending approvals: one signed HTTPS POST per attempt, each attempt evidence.

The body is the same on every attempt; the signature is HMAC-SHA256, keyed by the target's secret, over
``"{timestamp}.{body}"``, sent as ``X-Govflow-Signature: t=<timestamp>,v1=<hex>`` (the scheme Stripe
uses), with ``X-Govflow-Message-Id`` for receivers to drop a repeat (delivery is at least once).
``docs/webhooks.md`` shows a receiver verifying it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio import activity

from govflow.activities.common import GovflowActivities
from govflow.activities.escaping import console_url, shell_command, slack_text, workflow_url
from govflow.activities.evidence.events import (
    Event,
    NotificationAbandoned,
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
)
from govflow.activities.notify_messages import Abandon, Announcement, DeliveryAttempt, DeliveryResult
from govflow.activities.secrets import MissingSecret, read_secret
from govflow.policies.notification import Notification

TIMEOUT_S = 10.0


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def render(announcement: Announcement, style: str, link: str | None, console: str | None = None) -> bytes:
    """The body for a target: govflow's JSON, or a Slack-compatible incoming-webhook message. ``console``:
    the reviewer console's origin, when one serves reviewers (each action then links to its page there)."""
    a = announcement
    actions = [
        {**x.model_dump(mode="json"),
         "approve": shell_command("govflow", "approve", a.run_id, "--as", "<you>", "--action", x.action_id),
         "review": console_url(console, a.run_id, x.action_id) if console else None}
        for x in a.actions
    ]  # fmt: skip
    if style == "slack":
        task, run = slack_text(a.task), slack_text(a.run_id)
        head = {
            "waiting": f"*{task}*: run `{run}` waits for approval",
            "escalated": f"*{task}*: run `{run}` escalated: its approval window passed",
            "decided": f"*{task}*: run `{run}`: the wait is over",
        }[a.transition]
        lines = [
            f"• `{slack_text(x['action_id'])}` {slack_text(x['target'])} ({x['risk']} risk, rule "
            f"{slack_text(x['rule'])}): {x['status']}; {len(x['approved_by'])}/{x['quorum']} approved; "
            f"may approve: {slack_text(', '.join(x['eligible']))}; until {x['expires_at']}\n"
            f"  `{slack_text(x['approve'])}`" + (f" or <{x['review']}|review it in the console>" if x["review"] else "")
            for x in actions
        ]
        text = "\n".join([head, *lines, f"<{link}|Open the run in Temporal>" if link else ""]).strip()
        doc: dict[str, Any] = {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    else:
        doc = {
            "type": f"govflow.approval.{a.transition}", "id": a.notification_id, "run_id": a.run_id,
            "task": a.task, "task_version": a.task_version, "requester": a.requester, "transition": a.transition,
            "target": a.target, "at": a.at.isoformat(), "link": link, "actions": actions,
        }  # fmt: skip
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class NotifyActivities(GovflowActivities):
    """Needs the Temporal UI's address (``ui_url``) for the deep link to the run; without it none is sent."""

    def __init__(self, *args: Any, ui_url: str | None = None, namespace: str = "default", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ui_url = ui_url.rstrip("/") if ui_url else None
        self._namespace = namespace

    def _target(self, a: Announcement) -> Notification:
        policy = self._registration(a.task, a.task_version).policy
        target = next((n for n in policy.notifications if n.name == a.target), None)
        if target is None:
            raise ValueError(f"policy {policy.name} has no notification target {a.target!r}")
        return target

    def link(self, run_id: str) -> str | None:
        return workflow_url(self._ui_url, self._namespace, run_id) if self._ui_url else None

    @activity.defn(name="govflow.deliver_notification")
    async def deliver(self, attempt: DeliveryAttempt) -> DeliveryResult:
        """One attempt: POST the signed body; record the attempt (the first also records the request)."""
        a = attempt.announcement
        recorded = await self._store.next_seq("notification", a.notification_id)
        if recorded > attempt.seq:  # this attempt ran and was recorded; its completion was lost: no second POST
            rows = [r for r in await self._store.events("notification", a.notification_id) if r["seq"] >= attempt.seq]
            delivered = any(r["kind"] == NotificationDelivered.kind for r in rows)
            return DeliveryResult(delivered=delivered, next_seq=recorded, detail="" if delivered else "recorded before")
        target = self._target(a)
        body = render(a, target.format, self.link(a.run_id), self._console)
        events: list[Event] = []
        if attempt.attempt == 1:
            events.append(
                NotificationRequested(
                    run_id=a.run_id,
                    task=a.task,
                    transition=a.transition,
                    target=a.target,
                    url=target.url,
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    actions=[x.action_id for x in a.actions],
                )
            )
        status: int | None = None
        try:
            secret = read_secret(target.secret)
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Govflow-Signature": signature_header(secret, body, stamp),
                "X-Govflow-Message-Id": a.notification_id,
                "User-Agent": "govflow-notify/1",
            }
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
                response = await client.post(target.url, content=body, headers=headers)
            status = response.status_code
            problem = None if 200 <= status < 300 else f"the receiver answered {status}"
        except MissingSecret as exc:
            problem = f"target {a.target}: {exc}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if problem is None:
            assert status is not None
            events.append(
                NotificationDelivered(target=a.target, attempt=attempt.attempt, status=status, run_id=a.run_id)
            )
        else:
            events.append(NotificationFailed(target=a.target, attempt=attempt.attempt, detail=problem, status=status,
                                             retry_in_s=attempt.retry_in_s, run_id=a.run_id))  # fmt: skip
        await self._record(a, attempt.seq, events)
        return DeliveryResult(delivered=problem is None, next_seq=attempt.seq + len(events), detail=problem or "")

    @activity.defn(name="govflow.abandon_notification")
    async def abandon(self, request: Abandon) -> None:
        a = request.announcement
        event = NotificationAbandoned(target=a.target, attempts=request.attempts, detail=request.detail,
                                      run_id=a.run_id)  # fmt: skip
        await self._record(a, request.seq, [event])

    async def _record(self, a: Announcement, seq: int, events: list[Event]) -> None:
        rows = [(e.kind, e.payload(), a.at if isinstance(e, NotificationRequested) else datetime.now(UTC))
                for e in events]  # fmt: skip
        await self._append_chain("notification", a.notification_id, a.task, seq, rows)

    def all(self) -> list[Any]:
        return [self.deliver, self.abandon]
