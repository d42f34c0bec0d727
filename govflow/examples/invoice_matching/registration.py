"""What a worker serves of the example: the task (version 1) under its policy, and the demo's version
with stages and signing keys sized for `make demo-finance`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from govflow import (
    ModelClient,
    Policy,
    Registry,
    Settings,
    SharedPool,
    parse_policy,
    with_database,
)
from govflow.examples.invoice_matching.ledger import connectors
from govflow.examples.invoice_matching.task import POLICY, SOR_DATABASE, InvoiceMatching, baseline_model

# --- the demo's version -------------------------------------------------------------------------------------

DEMO_VERSION = "demo"
DEMO_PEOPLE = ("dana", "erik", "farah", "hana", "gus")


class InvoiceMatchingDemo(InvoiceMatching):
    """The task under the demo's policy: the same grants and rules, short stages, demo keys."""

    version = DEMO_VERSION


def demo_keys_dir(settings: Settings) -> Path:
    """Where ``govflow demo --task invoice-matching`` keeps the demo people's keys (``<person>.pem``) and
    public keys (``<person>.pub``)."""
    return settings.home / "demo-keys"


def demo_policy(keys: Path) -> Policy:
    """invoice-matching.yaml with the demo people's public keys (from ``keys``), stages and windows sized
    for a two-minute demo, and every stop rule a pause."""
    doc: dict[str, Any] = yaml.safe_load(POLICY.read_text())
    for person in doc["reviewers"]["people"]:
        person["public_key"] = (keys / f"{person['id']}.pub").read_text().strip()
    doc["rollout"] = {
        "restore_by": doc["rollout"].get("restore_by", []),
        "stages": [
            {"name": "shadow", "live_fraction": 0.0, "min_runs": 20},
            {"name": "pilot", "live_fraction": 0.5, "min_runs": 500, "gate": "auto+approval", "promoters": ["farah"]},
            {"name": "full", "live_fraction": 1.0},
        ],
    }

    def demo_scale() -> dict[str, Any]:  # fresh dicts: a shared one would be dumped as a YAML alias
        return {"false_pauses": {"at_most": 0.01, "per_runs": 1000}, "wrong_promotions": 0.05}

    doc["quality"]["window"] = [
        {"name": "pass-rate", "metric": "pass_rate", "threshold": 0.8, "window": 20, "min_sample": 10, **demo_scale()},
        {"name": "override-rate", "metric": "override_rate", "threshold": 0.2, "window": 20, "min_sample": 10,
         **demo_scale()},
    ]  # fmt: skip
    doc["stop_rules"] = [{"when": "pass-rate", "action": "pause"}, {"when": "override-rate", "action": "pause"}]
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="invoice-matching.yaml (demo)")


# --- the app a worker loads -------------------------------------------------------------------------------------


def register(
    registry: Registry,
    sor_url: str,
    *,
    task: InvoiceMatching | None = None,
    policy: Policy | Path = POLICY,
    model: ModelClient | None = None,
) -> None:
    registry.register(
        task or InvoiceMatching(),
        policy=policy,
        connectors=connectors(SharedPool(sor_url)),
        model=model or baseline_model(),
    )


def app(settings: Settings, database_url: str) -> Registry:
    """``govflow worker --app govflow.examples.invoice_matching:app``: version 1 under the shipped policy
    (or ``GOVFLOW_POLICY_DIR``'s), and the demo version once ``govflow demo --task invoice-matching`` has
    made the demo people's keys."""
    registry = Registry()
    sor = with_database(database_url, SOR_DATABASE)
    register(registry, sor, policy=(settings.policy_dir / POLICY.name) if settings.policy_dir else POLICY)
    keys = demo_keys_dir(settings)
    if all((keys / f"{p}.pub").is_file() for p in DEMO_PEOPLE):
        register(registry, sor, task=InvoiceMatchingDemo(), policy=demo_policy(keys))
    return registry
