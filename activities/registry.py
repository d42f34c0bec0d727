"""Which tasks this worker runs, each with its policy, connectors and model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govflow.activities.connectors.connector import Connector
from govflow.activities.models.chat import ModelClient
from govflow.activities.run_messages import compress_text
from govflow.activities.secrets import MissingSecret, read_secret
from govflow.activities.tasks.contract import Task
from govflow.policies import Policy, canonical_json, load_policy, policy_digest
from govflow.policies.errors import GovflowError


class UnknownTask(GovflowError):
    """A run names a task (or version) no worker registered."""


@dataclass
class Registration:
    """One task version as a worker serves it: the task, its policy (and digest), connectors and model."""

    task: Task[Any, Any, Any]
    policy: Policy
    connectors: dict[str, Connector]
    model: ModelClient
    source: Path | None = None
    """The policy file, when the task was registered with one (for findings with their lines)."""
    digest: str = field(init=False)
    policy_json: str = field(init=False)
    policy_zlib: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = policy_digest(self.policy)
        self.policy_json = canonical_json(self.policy.as_json()).decode()
        self.policy_zlib = compress_text(self.policy_json)
        misnamed = [f"{key!r} holds the connector of {c.system!r}" for key, c in self.connectors.items()
                    if getattr(c, "system", key) != key]  # fmt: skip
        if misnamed:
            raise GovflowError(
                f"task {self.task.name}: connectors are registered by their system: {'; '.join(misnamed)}"
            )
        for note in self.policy.notifications:
            try:
                read_secret(note.secret)
            except MissingSecret as exc:
                raise GovflowError(
                    f"task {self.task.name}: policy {self.policy.name}, notification {note.name}: {exc}"
                ) from None
        systems = {g.system for g in self.policy.grants}
        missing = sorted(systems - set(self.connectors))
        if missing:
            raise GovflowError(
                f"task {self.task.name}: policy {self.policy.name} grants access to "
                f"{', '.join(missing)} but no connector is registered for it"
            )


class Registry:
    """What a worker serves: task versions, each registered with its policy, connectors and model."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Registration] = {}

    def register(
        self,
        task: Task[Any, Any, Any],
        *,
        policy: Policy | str | Path,
        connectors: Mapping[str, Connector] | Iterable[Connector],
        model: ModelClient,
    ) -> Registration:
        """Register a task with its policy (a file or a loaded policy), connectors and model.

        ``connectors``: a list (each is registered under its own ``system``), or a mapping from system to
        connector, checked to agree with each connector's ``system``."""
        loaded = policy if isinstance(policy, Policy) else load_policy(policy)
        by_system = dict(connectors) if isinstance(connectors, Mapping) else {c.system: c for c in connectors}
        source = None if isinstance(policy, Policy) else Path(policy)
        reg = Registration(task=task, policy=loaded, connectors=by_system, model=model, source=source)
        if task.key in self._by_key:
            raise GovflowError(f"task {task.name} version {task.version} is registered twice")
        self._by_key[task.key] = reg
        return reg

    def include(self, other: Registry) -> None:
        """Serve ``other``'s tasks too (one worker, several apps); a task version in both is an error."""
        twice = sorted(set(self._by_key) & set(other._by_key))
        if twice:
            raise GovflowError("registered twice: " + ", ".join(f"task {n} version {v}" for n, v in twice))
        self._by_key.update(other._by_key)

    def get(self, task: str, version: str) -> Registration:
        """The registration of ``task`` version ``version``; an error naming what is served when there is none."""
        reg = self._by_key.get((task, version))
        if reg is None:
            known = ", ".join(f"{n} v{v}" for n, v in sorted(self._by_key)) or "none"
            raise UnknownTask(f"no worker task {task!r} version {version!r} (registered: {known})")
        return reg

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._by_key.values())

    async def aclose(self) -> None:
        """Close what the connectors and models hold open (pools, HTTP clients)."""
        for reg in self._by_key.values():
            for part in [*reg.connectors.values(), reg.model]:
                closer = getattr(part, "aclose", None)
                if closer is not None:
                    await closer()
