"""Ids and names from outside never change what a link opens, a copied command runs, or Markdown shows."""

from __future__ import annotations

import html as html_lib
import json
import posixpath
import re
import shlex
from datetime import UTC, datetime
from urllib.parse import unquote, urljoin, urlsplit

from markdown_it import MarkdownIt

from govflow.activities.escaping import md_code, md_text, workflow_url
from govflow.activities.notify_activities import NotifyActivities, render
from govflow.activities.notify_messages import AnnouncedAction, Announcement
from govflow.activities.registry import Registry
from govflow.workflows.details import run_details
from govflow.workflows.run_api import RunInput

DECOY = "T0036/../../../namespaces/default/workflows/decoy"
RUN_ID = f"run-support-triage-{DECOY}-1a2b3c4d"
HOSTILE = [
    RUN_ID, "..", ".", "a?b#c", "x%2Fy", "[click](https://evil.example)", "`x` <b>y</b>", "a; rm -rf ~", "$(id)",
    "<https://evil.example|Open>", "*bold* _it_ ~~s~~ | t |", "https://evil.example/x",
]  # fmt: skip


def test_a_link_to_a_run_opens_that_run_whatever_its_id() -> None:
    for run_id in HOSTILE:
        link = workflow_url("http://127.0.0.1:8233/", "default", run_id)
        path = urlsplit(link).path
        assert not urlsplit(link).query, link
        assert not urlsplit(link).fragment, link
        # What a browser opens: dot segments resolved, nothing left to resolve.
        assert posixpath.normpath(urlsplit(urljoin(link, "")).path) == path, link
        head, _, last = path.rpartition("/")
        assert head == "/namespaces/default/workflows"
        assert unquote(last) == run_id


def _announcement(run_id: str) -> Announcement:
    action = AnnouncedAction(
        action_id="reply", target="ticketing.ticket.reply", digest="0" * 64, rule="reply-to-ticket", risk="medium",
        quorum=1, eligible=["alice"], expires_at=datetime(2026, 12, 1, tzinfo=UTC), status="open",
    )  # fmt: skip
    return Announcement(
        notification_id=f"notify-{run_id}", run_id=run_id, task="support-triage", task_version="1", requester="priya",
        transition="waiting", target="leads", at=datetime(2026, 12, 1, tzinfo=UTC), actions=[action],
    )  # fmt: skip


def test_a_notification_links_to_its_run_and_its_command_approves_that_run() -> None:
    notices = NotifyActivities(Registry(), None, ui_url="http://127.0.0.1:8233", namespace="default")  # type: ignore[arg-type]
    for run_id in HOSTILE:
        link = notices.link(run_id)
        assert link is not None
        body = json.loads(render(_announcement(run_id), "json", link))
        assert unquote(urlsplit(body["link"]).path.rpartition("/")[2]) == run_id
        words = shlex.split(body["actions"][0]["approve"])
        assert words[:3] == ["govflow", "approve", run_id]
        assert words[3:] == ["--as", "<you>", "--action", "reply"]
        slack = json.loads(render(_announcement(run_id), "slack", link))["text"]
        # The only mrkdwn link is the one govflow put there.
        assert (slack.count("<"), slack.count(">")) == (1, 1), slack
        assert f"<{link}|Open the run in Temporal>" in slack


def test_a_notification_links_each_action_to_its_page_in_the_console() -> None:
    for run_id in HOSTILE:
        body = json.loads(render(_announcement(run_id), "json", None, "http://localhost:8280"))
        review = urlsplit(body["actions"][0]["review"])
        assert (review.scheme, review.netloc) == ("http", "localhost:8280")
        _, runs, run, actions, action = review.path.split("/")
        assert (runs, unquote(run), actions, action) == ("runs", run_id, "actions", "reply")
        slack = json.loads(render(_announcement(run_id), "slack", None, "http://localhost:8280"))["text"]
        assert (slack.count("<"), slack.count(">")) == (1, 1), slack  # the console link, and nothing else
        assert f"<{body['actions'][0]['review']}|review it in the console>" in slack
    without = json.loads(render(_announcement("r1"), "json", None))
    assert without["actions"][0]["review"] is None


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("strikethrough").enable("table").render(markdown)


def test_the_run_details_show_outside_text_as_text() -> None:
    for text in HOSTILE:
        inp = RunInput(task="support-triage", item_key=text, item={}, requester=text.replace("\n", " "))
        html = _html(run_details(text, inp, "awaiting approval", None, f"exception about {text}", []))
        for tag in ("<a ", "<b>", "<em>", "<s>"):
            assert tag not in html, html
        assert "<table" not in html
        assert html.count("<strong>") == 3  # the task, the mode and the phase, as the template has them
        # The evidence command, copied from its code span, names the run as one word.
        code = html.split("Evidence: <code>")[1].split("</code>")[0]
        assert shlex.split(html_lib.unescape(code)) == ["govflow", "evidence", "show", text]


def test_markdown_helpers_keep_the_text() -> None:
    for text in HOSTILE:
        assert _html(md_text(text)).strip() in (f"<p>{_escape(text)}</p>",), text
        code = _html(md_code(text)).strip()
        assert code == f"<p><code>{_escape(text)}</code></p>", code


def _escape(text: str) -> str:
    return html_lib.escape(text, quote=False).replace('"', "&quot;")


def test_the_run_details_link_a_waiting_exception_to_its_console_page() -> None:
    origin = "http://localhost:8280"
    for text in HOSTILE:
        inp = RunInput(task="support-triage", item_key=text, item={}, requester="priya")
        html = _html(run_details(text, inp, "exception", None, f"incomplete_input: {text}", [], console=origin))
        (href,) = re.findall(r'<a href="([^"]+)">', html)
        path = urlsplit(html_lib.unescape(href)).path
        assert posixpath.normpath(urlsplit(urljoin(html_lib.unescape(href), "")).path) == path, href
        head, _, tail = path.removeprefix("/runs/").rpartition("/")
        assert (unquote(head), tail) == (text, "exception"), href
    plain = run_details("r1", RunInput(task="t", item_key="k", item={}, requester="p"), "x", None, "e: d", [])
    assert "console" not in plain  # no console serves reviewers: no link
