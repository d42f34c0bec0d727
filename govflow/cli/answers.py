"""What the command groups share: exit codes, JSON output, the answer to a person's act."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TypeAlias

from govflow.policies import AttemptOutcome
from govflow.policies.durations import parse_duration
from govflow.policies.errors import GovflowError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command group registers its commands (``register(sub)``)."""

EXIT_REFUSED = 3
"""Exit code of a person's act the workflow refused (0 means accepted)."""


def since(text: str | None) -> datetime | None:
    """A ``--since``: a duration back from now (30d, 12h) or an ISO 8601 time; None when not given."""
    if not text:
        return None
    try:
        return datetime.now(UTC) - parse_duration(text)
    except (ValueError, GovflowError):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise GovflowError(f"--since {text!r}: a duration (30d, 12h) or an ISO 8601 time") from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def answer(outcome: AttemptOutcome) -> int:
    """Say the run's verdict on a person's act: exit 0 accepted, EXIT_REFUSED refused."""
    if outcome.accepted:
        print(f"accepted: {outcome.reason}")
        return 0
    print(f"refused ({outcome.code}): {outcome.reason}", file=sys.stderr)
    return EXIT_REFUSED
