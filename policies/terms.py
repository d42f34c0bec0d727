"""The words a policy is written in: names, operations, risk, and strictness (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
)

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]
"""Identifiers: lower case letters, digits, ``-``, ``_`` and ``.``."""

Operation = Literal["read", "create", "update", "delete", "reply", "pay"]
WRITE_OPERATIONS: frozenset[str] = frozenset({"create", "update", "delete", "reply", "pay"})
Risk = Literal["low", "medium", "high"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
