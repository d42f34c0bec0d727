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


PUBLIC = [
    "IDEMPOTENCY_DDL", "Action", "Connector", "ConnectorError", "ContradictoryInput", "HttpJsonConnector",
    "IncompleteInput", "InvalidModelOutput", "LocalBaselineModel", "Message", "ModelClient", "ModelError",
    "ModelRequest", "ModelResponse", "OpenAIChatClient", "Policy", "PostgresTableConnector", "Proposal", "Record",
    "Registry", "ScopeViolation", "ScopedConnectors", "Settings", "SharedPool", "Table", "Task", "TaskInputError",
    "WriteRequest", "WriteResult", "database_url", "ensure_database", "load_policy", "parse_output", "parse_policy",
    "with_database",
]  # fmt: skip
CLIENT = [
    "COMMANDS", "Settings", "admit", "connect", "control", "grant_act", "grant_status", "load_settings",
    "propose_grant", "resolve", "review", "revoke_grant", "rollout_id", "rollout_status", "run_status",
    "running_rollout", "start_rollout", "submit",
]  # fmt: skip


def test_the_public_api_is_pinned() -> None:
    # A name added to or dropped from what users import is a decision: change it here, and in the docs.
    import govflow.client

    assert sorted(govflow.__all__) == sorted(PUBLIC)
    assert sorted(govflow.client.__all__) == sorted(CLIENT)
    for module in (govflow, govflow.client):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def _govflow_imports(code: str) -> set[str]:
    return {m for m in re.findall(r"^\s*(?:from|import) ([\w.]+)", code, re.M) if m.split(".")[0] == "govflow"}


def test_the_docs_example_and_both_example_tasks_import_only_the_public_api() -> None:
    doc = (ROOT / "docs" / "writing-a-task.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    assert _govflow_imports(code) == {"govflow"}
    names = re.search(r"from govflow import \((.*?)\)", code, re.S)
    assert names is not None
    for name in re.findall(r"\w+", names.group(1)):
        assert hasattr(govflow, name), name
    for path in sorted((ROOT / "govflow" / "examples").rglob("*.py")):
        internals = {
            m for m in _govflow_imports(path.read_text()) if m != "govflow" and not m.startswith("govflow.examples")
        }
        assert not internals, f"{path.relative_to(ROOT)} imports govflow internals: {sorted(internals)}"


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
