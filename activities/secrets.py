"""Secrets by reference: a policy names where a secret is (an environment variable, a file), never it."""

from __future__ import annotations

import os
from pathlib import Path

from govflow.policies.notification import SecretRef


class MissingSecret(Exception):
    """A target's secret cannot be read: the environment variable is unset or the file is unreadable."""


def read_secret(ref: SecretRef) -> bytes:
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise MissingSecret(f"its secret's environment variable {ref.env} is not set")
        return value.encode()
    assert ref.file is not None
    try:
        value = Path(ref.file).read_text().strip()
    except OSError as exc:
        raise MissingSecret(f"its secret file {ref.file} cannot be read ({exc.strerror})") from None
    if not value:
        raise MissingSecret(f"its secret file {ref.file} is empty")
    return value.encode()
