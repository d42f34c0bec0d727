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

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from temporalio import workflow

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


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    problem = _signature_problem(fn)
    if problem:
        raise TypeError(problem)
    return fn


def signal(*, name: str, description: str) -> Callable[[Callable[P, Awaitable[None]]], Callable[P, Awaitable[None]]]:
    """``workflow.signal`` for a handler of untrusted input: ``(self, *args)``, checked here."""

    def declare(fn: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        _checked(fn)
        return workflow.signal(name=name, description=description)(fn)

    return declare


def update(*, name: str, description: str) -> Callable[[Callable[P, R]], workflow.UpdateMethodMultiParam[P, R]]:
    """``workflow.update`` for a handler of untrusted input: ``(self, *args)``, checked here."""

    def declare(fn: Callable[P, R]) -> workflow.UpdateMethodMultiParam[P, R]:
        _checked(fn)
        return workflow.update(name=name, description=description)(fn)

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
