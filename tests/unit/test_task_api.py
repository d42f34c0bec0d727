"""The task author's API: one import, type parameters said once, connectors under their own system."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import govflow
from govflow.examples import support_triage
from govflow.policies.errors import GovflowError

ROOT = Path(__file__).parents[2]


def test_the_docs_example_imports_only_the_public_api() -> None:
    doc = (ROOT / "docs" / "writing-a-task.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    imported = set(re.findall(r"^(?:from|import) ([\w.]+)", code, re.M))
    ours = {m.split(".")[0] for m in imported} & {"activities", "workflows", "workers", "policies"}
    assert not ours, f"the example imports govflow internals: {sorted(ours)}"
    assert "govflow" in imported
    names = re.search(r"from govflow import \((.*?)\)", code, re.S)
    assert names is not None
    for name in re.findall(r"\w+", names.group(1)):
        assert hasattr(govflow, name), name


class Item(BaseModel):
    ticket_id: str


class Context(BaseModel):
    text: str


def test_a_task_takes_its_models_from_its_type_parameters() -> None:
    class Categorize(govflow.Task[Item, Context, govflow.Proposal]):
        name = "categorize"
        version = "1"

        async def gather(self, item, io):  # type: ignore[no-untyped-def]
            return Context(text="")

        async def propose(self, context, model):  # type: ignore[no-untyped-def]
            return govflow.Proposal()

    assert (Categorize.item_model, Categorize.context_model) == (Item, Context)


def test_a_task_without_a_name_says_what_it_lacks() -> None:
    with pytest.raises(TypeError, match="lacks name, version"):

        class Nameless(govflow.Task[Item, Context, govflow.Proposal]):
            async def gather(self, item, io):  # type: ignore[no-untyped-def]
                return Context(text="")

            async def propose(self, context, model):  # type: ignore[no-untyped-def]
                return govflow.Proposal()


def test_a_connector_registered_under_another_system_is_refused() -> None:
    pool = govflow.SharedPool("postgresql://nobody@localhost/none")  # never connected
    crm, ticketing = support_triage.connectors(pool).values()
    registry = govflow.Registry()
    policy = ROOT / "policies" / "examples" / "support-triage.yaml"
    with pytest.raises(GovflowError, match="'crm' holds the connector of 'ticketing'"):
        registry.register(support_triage.SupportTriage(), policy=policy, connectors={"crm": ticketing,
                          "ticketing": crm}, model=support_triage.baseline_model(0.0))  # fmt: skip
    reg = registry.register(support_triage.SupportTriage(), policy=policy, connectors=[crm, ticketing],
                            model=support_triage.baseline_model(0.0))  # fmt: skip
    assert sorted(reg.connectors) == ["crm", "ticketing"]
