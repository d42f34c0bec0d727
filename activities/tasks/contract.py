"""The task contract: what an engineer writes to put an AI step under govflow.

A task gathers context through scoped connectors and proposes actions; it
never writes. govflow decides, asks for approval, publishes and keeps evidence.

    class SupportTriage(Task[TicketItem, TicketContext, TriageProposal]):
        name = "support-triage"
        version = "1"

        async def gather(self, item, io):            # io: ScopedConnectors
            ticket = await io.read("ticketing", "ticket", item.ticket_id)
            ...
        async def propose(self, context, model):     # model: ModelClient
            response = await model.complete(ModelRequest(messages=[...]))
            return parse_output(TriageProposal, response.text)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field

from govflow.activities.connectors.guard import ScopedConnectors
from govflow.activities.models.chat import ModelClient
from govflow.policies.actions import Action
from govflow.policies.errors import GovflowError


class Proposal(BaseModel):
    """What a task's propose step returns: actions, and the quality scores of the AI step."""

    actions: list[Action] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    rationale: str = ""


class TaskInputError(GovflowError):
    """Input a task cannot decide on; it goes to the exception route, never to a guess."""

    kind: ClassVar[Literal["incomplete_input", "contradictory_input"]]


class IncompleteInput(TaskInputError):
    """The item lacks what the task needs to decide: a person decides (the exception route)."""

    kind = "incomplete_input"


class ContradictoryInput(TaskInputError):
    """The item contradicts itself or its records: a person decides (the exception route)."""

    kind = "contradictory_input"


ItemT = TypeVar("ItemT", bound=BaseModel)
ContextT = TypeVar("ContextT", bound=BaseModel)
ProposalT = TypeVar("ProposalT", bound=Proposal)


class Task(ABC, Generic[ItemT, ContextT, ProposalT]):
    """Subclass as ``Task[Item, Context, YourProposal]``: the type parameters are said once, and they
    are what govflow validates an item and a context with (``item_model``, ``context_model``)."""

    name: ClassVar[str]
    version: ClassVar[str]
    item_model: ClassVar[type[BaseModel]]
    context_model: ClassVar[type[BaseModel]]
    population: ClassVar[tuple[str, str] | None] = None
    """The (system, resource) whose records are this task's items, each record id an item key: what
    `govflow report coverage` counts against the runs. None: the task does not say."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Task:
                item, context, _ = get_args(base)
                if isinstance(item, type) and "item_model" not in cls.__dict__:
                    cls.item_model = item
                if isinstance(context, type) and "context_model" not in cls.__dict__:
                    cls.context_model = context
        concrete = not any(getattr(getattr(cls, m), "__isabstractmethod__", False) for m in ("gather", "propose"))
        if concrete:  # an abstract base of tasks may leave these to its subclasses
            missing = [n for n in ("name", "version", "item_model", "context_model") if not hasattr(cls, n)]
            if missing:
                raise TypeError(
                    f"task {cls.__name__} lacks {', '.join(missing)}: subclass Task[Item, Context, Proposal] "
                    "with pydantic models, and set name and version"
                )

    @abstractmethod
    async def gather(self, item: ItemT, io: ScopedConnectors) -> ContextT:
        """Read what the AI step needs, through ``io`` only. Raise IncompleteInput or
        ContradictoryInput when the input cannot be decided on."""

    @abstractmethod
    async def propose(self, context: ContextT, model: ModelClient) -> ProposalT:
        """Call the model and return its proposal (use ``parse_output`` to validate it)."""

    @property
    def key(self) -> tuple[str, str]:
        """The task's (name, version): one registration, one rollout."""
        return (self.name, self.version)


class TaskMistake(Exception):
    """A task's ``gather`` or ``propose`` failed in its own code, or returned what its types do not declare.

    Retrying cannot fix it (the same code runs again): the run goes to its exception route, with the
    problem in its evidence, where a person retries once a fixed worker is deployed, or discards it."""


def task_mistake(task: Task[Any, Any, Any], step: str, exc: BaseException) -> str:
    """How a task's own bug reads on the exception route: which task, which step, what it raised."""
    return f"task {task.name} v{task.version}: {step} raised {type(exc).__name__}: {exc}"


def wrong_type(task: Task[Any, Any, Any], step: str, got: object, declared: type) -> str:
    """How a step that returned the wrong type reads on the exception route."""
    return (
        f"task {task.name} v{task.version}: {step} returned a {type(got).__name__}, not the "
        f"{declared.__name__} its types declare"
    )
