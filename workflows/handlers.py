"""The one way a govflow workflow declares a signal or an update: it takes raw input and never raises.

Anyone with the Temporal UI or API can send any handler anything (workflows/inputs.py). A handler
whose parameters are typed makes the SDK convert the input before the handler runs: no input or two
payloads then raise ``TypeError`` inside the workflow task, and while such an Update is pending every
other act on the workflow fails with "Workflow Task in failed state" (the standing grant's handlers
did exactly that). So every signal and update takes ``(self, *args)`` and reads its input itself with
:func:`workflows.inputs.read`, recording what it cannot read as a refused attempt.

:func:`signal` and :func:`update` declare such handlers and refuse any other signature when the
class is defined; :func:`problems` checks a whole workflow class (the worker checks every workflow it
runs, and a test checks every registered one), so a handler declared with ``workflow.signal`` directly
is caught too. Queries are left alone: a query that raises fails only that query.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from govflow.workflows.inputs import Unreadable

UNREADABLE_BYTES = "unreadable-bytes"
"""The patch from which a workflow receives bytes that are not JSON (workflows/payloads.py). Before it,
the SDK dropped them before any handler ran, so a history from then holds such a signal with no command
after it: replayed, it is dropped again. Asked only when such bytes arrive, so a workflow that never
receives any records no marker; never asked by a PINNED workflow (one generation: ``PINNED = True`` on
its class), which has no history from before it."""

P = ParamSpec("P")
R = TypeVar("R")


def _signature_problem(fn: Callable[..., Any]) -> str | None:
    params = list(inspect.signature(fn).parameters.values())
    kinds = [p.kind for p in params]
    if kinds == [inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL]:
        return None
    shown = ", ".join(str(p) for p in params)
    return (
        f"{fn.__qualname__}({shown}) must take (self, *args: Any) and read its input with "
        "workflows.inputs.read: anyone can send a handler anything"
    )


def _check(fn: Callable[..., Any]) -> None:
    problem = _signature_problem(fn)
    if problem:
        raise TypeError(problem)


def pinned(cls: type) -> bool:
    """A workflow of one generation: PINNED to its worker build, it asks no patch (``make lint`` checks)."""
    return bool(getattr(cls, "PINNED", False))


def _received(args: tuple[Any, ...]) -> bool:
    """False for bytes that are not JSON sent before the workflow could receive them (see UNREADABLE_BYTES)."""
    if pinned(type(args[0])) or not any(isinstance(a, Unreadable) for a in args[1:]):
        return True
    return workflow.patched(UNREADABLE_BYTES)


def signal(*, name: str, description: str) -> Callable[[Callable[P, Awaitable[None]]], Callable[P, Awaitable[None]]]:
    """``workflow.signal`` for a handler of untrusted input: ``(self, *args)``, checked here."""

    def declare(fn: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        _check(fn)

        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> None:
            if _received(tuple(args)):
                await fn(*args, **kwargs)

        return workflow.signal(name=name, description=description)(handler)

    return declare


def update(
    *, name: str, description: str
) -> Callable[[Callable[P, Awaitable[R]]], workflow.UpdateMethodMultiParam[P, Awaitable[R]]]:
    """``workflow.update`` for a handler of untrusted input: ``(self, *args)``, checked here."""

    def declare(fn: Callable[P, Awaitable[R]]) -> workflow.UpdateMethodMultiParam[P, Awaitable[R]]:
        _check(fn)

        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            if not _received(tuple(args)):
                raise ApplicationError("the payload is not JSON", type="UnreadablePayload", non_retryable=True)
            return await fn(*args, **kwargs)

        return workflow.update(name=name, description=description)(handler)

    return declare


def problems(cls: type) -> list[str]:
    """Every signal and update of the workflow class ``cls`` that does not take raw input."""
    defn = workflow._Definition.must_from_class(cls)
    found: list[str] = []
    for kind, handlers in (("signal", defn.signals), ("update", defn.updates)):
        for handler_name, handler in handlers.items():
            problem = _signature_problem(handler.fn)
            if problem:
                found.append(f"{defn.name} {kind} {handler_name!r}: {problem}")
    return found
