"""Reading what reaches a workflow from outside: signals and updates are untrusted.

Anyone with the Temporal UI or API can send any payload to any handler: nothing,
``null``, a list, a string, two payloads, a name holding a NUL byte. A handler that
raises on such input fails its workflow task forever (the workflow is wedged), and
one whose argument the SDK cannot convert drops the signal with only a log line.
So every govflow handler takes its input as ``*args`` (the SDK then hands over the
decoded JSON as it came) and reads it here, into a model, or into a refusal that
names what is wrong and carries a printable copy of the raw input for the evidence.
Bytes that are not JSON at all reach the handler too, as :class:`Unreadable` (the data
converter in ``workflows/payloads.py`` makes one instead of dropping the signal).

Pure: no Temporal, no I/O; the workflows call it inside handlers.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

_RAW_LIMIT = 500
"""How much of an unreadable payload the evidence keeps (escaped, so always storable)."""


def _printable(value: str, *, newlines: bool) -> str:
    for ch in value:
        if ch in "\n\t" and newlines:
            continue
        # Cc: control characters (NUL, ESC, DEL...); Cf: format (bidi overrides, zero-width).
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            raise ValueError(f"holds the control character U+{ord(ch):04X}; only printable text is accepted")
    return value


def _no_control(value: str) -> str:
    return _printable(value, newlines=False)


def _no_control_but_newlines(value: str) -> str:
    return _printable(value, newlines=True)


PersonName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), AfterValidator(_no_control)
]
"""A reviewer's, requester's or operator's name: 1-120 printable characters."""

Token = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control)]
"""A digest, an action id, a base64 signature: short and printable."""

Note = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_control_but_newlines)]
"""Free text from a person (a reason): up to 2,000 characters, newlines and tabs allowed."""


@dataclass(frozen=True)
class Unreadable:
    """A payload the data converter could not decode (bytes that are not JSON, an unknown encoding):
    handed to the handler in its place, so the attempt is recorded rather than dropped unseen."""

    encoding: str
    problem: str
    data: str
    """The payload's first bytes, escaped (always printable)."""

    def as_json(self) -> dict[str, str]:
        return {"unreadable_payload": self.encoding, "problem": self.problem, "bytes": self.data}


def _jsonable(value: Any) -> Any:
    return value.as_json() if isinstance(value, Unreadable) else repr(value)


def raw_text(args: Sequence[Any]) -> str:
    """A printable, bounded copy of a handler's raw arguments, for the evidence."""
    value: Any = args[0] if len(args) == 1 else list(args)
    try:
        text = json.dumps(value, ensure_ascii=True, sort_keys=True, default=_jsonable)
    except (TypeError, ValueError):  # pragma: no cover - JSON-decoded input always dumps
        text = repr(value)
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + f"... ({len(text)} characters)"


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "payload"
        parts.append(f"{where}: {e['msg']}")
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Read(Generic[M]):
    """What a handler received: the model when it reads, else the problem and the raw input."""

    value: M | None
    problem: str
    raw: str

    @property
    def ok(self) -> bool:
        return self.value is not None


def read(model: type[M], args: Sequence[Any], example: str) -> Read[M]:
    """Read a handler's ``*args`` as one ``model`` payload; never raises."""
    raw = raw_text(args)
    if len(args) == 0 or (len(args) == 1 and args[0] is None):
        return Read(None, f"the payload is empty; send one JSON object such as {example}", raw)
    if len(args) > 1:
        return Read(None, f"{len(args)} payloads were sent; send one JSON object such as {example}", raw)
    if isinstance(args[0], Unreadable):
        return Read(None, f"the payload is not JSON ({args[0].problem}); send one JSON object such as {example}", raw)
    if not isinstance(args[0], dict):
        return Read(None, f"the payload is a {type(args[0]).__name__}, not a JSON object such as {example}", raw)
    try:
        return Read(model.model_validate(args[0]), "", raw)
    except ValidationError as err:
        return Read(None, f"{_explain(err)} (expected e.g. {example})", raw)
    except (TypeError, ValueError, RecursionError) as err:  # pragma: no cover - defensive: never raise here
        return Read(None, f"unreadable payload: {err}", raw)


def field_text(args: Sequence[Any], key: str, limit: int = 120) -> str | None:
    """A best-effort, printable value of ``key`` from an unreadable payload (a name to record)."""
    if len(args) != 1 or not isinstance(args[0], dict):
        return None
    value = args[0].get(key)
    if not isinstance(value, str) or not value.strip():
        return None
    cleaned = "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf", "Cs") else "?" for ch in value.strip())
    return cleaned[:limit]
