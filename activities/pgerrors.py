"""Postgres errors, classified once: transient (retry) or not, by SQLSTATE class.

Used by the connectors and the evidence store alike. A restarting or failing-over
server answers with class 57P (admin shutdown, cannot connect now), a lost or
refused connection with class 08 or an OSError, an overloaded one with class 53;
serialization failures and deadlocks (40001, 40P01) succeed when tried again. Those
are transient: the activity retries and the run resumes when Postgres is back.
Everything else (23 integrity, 42 syntax or access, 22 data) is a fact about the
request and will fail the same way again.
"""

from __future__ import annotations

import asyncio

import asyncpg

_TRANSIENT_CLASSES = ("08", "53", "57", "58")
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03"})


def sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed later: the server or the connection, not the request."""
    if isinstance(exc, OSError | asyncio.TimeoutError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    code = sqlstate(exc)
    if code is None:
        return False
    return code in _TRANSIENT_CODES or code[:2] in _TRANSIENT_CLASSES
