"""Ids and names from outside, put into another language: a URL, a shell command, Markdown, Slack's mrkdwn.

A run id is whatever its starter chose (``govflow run submit`` builds it from the item's key), a
requester or an operator is whatever a payload said. Put raw into a link, ``T0036/../../../namespaces/
default/workflows/decoy`` opens another page; into a command a reviewer copies, ``; rm -rf ~`` runs;
into Markdown or mrkdwn, ``[click](https://...)`` becomes a link. Everything that renders such text goes
through one of these. Pure.
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import quote


def url_segment(text: str) -> str:
    """``text`` as one path segment: ``/``, ``?``, ``#``, ``%`` and dot segments cannot leave it."""
    escaped = quote(text, safe="")
    # "." and ".." are the two segments percent-encoding leaves as they are, and browsers resolve them.
    return {".": "%2E", "..": "%2E%2E"}.get(escaped, escaped)


def workflow_url(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The Temporal UI's page of one workflow."""
    return f"{ui_url.rstrip('/')}/namespaces/{url_segment(namespace)}/workflows/{url_segment(workflow_id)}"


def console_url(origin: str, run_id: str, action_id: str) -> str:
    """The reviewer console's page of one action."""
    return f"{origin.rstrip('/')}/runs/{url_segment(run_id)}/actions/{url_segment(action_id)}"


def console_exception_url(origin: str, run_id: str) -> str:
    """The reviewer console's page of the exception a run waits on."""
    return f"{origin.rstrip('/')}/runs/{url_segment(run_id)}/exception"


def shell_arg(text: str) -> str:
    """``text`` as one word of a POSIX shell command."""
    return shlex.quote(text)


def shell_command(*words: str) -> str:
    return " ".join(shell_arg(w) if w not in ("<you>",) else w for w in words)


# What can start markup in the middle of a line: code, emphasis, links and images, HTML and autolinks,
# tables, strikethrough, entities. (A "-", "+", "#" or "1." only matters at a line's start, where these
# details never put outside text.)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(text: str) -> str:
    """``text`` as plain Markdown text: no emphasis, link, code or HTML can start inside it, nor a bare URL
    become a link (GFM autolinks ``https://``: its slashes are escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split())).replace("://", ":\\/\\/")


def md_code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds (CommonMark: a longer fence)."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def slack_text(text: str) -> str:
    """``text`` inside Slack mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack asks, so no link or mention
    can start inside it, and backticks made harmless for the code spans it sits in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
