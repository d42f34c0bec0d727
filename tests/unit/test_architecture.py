"""The code-shape rules ``make lint`` checks (tests/architecture.py) hold, and each would catch a breach."""

from __future__ import annotations

from pathlib import Path

from tests import architecture


def test_the_tree_keeps_the_rules() -> None:
    assert architecture.problems() == []


def test_a_module_over_the_limit_is_named(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n" * 400)
    found = architecture.oversized(architecture.modules(tmp_path, ["pkg"]), tmp_path)
    assert found == ["pkg/big.py: 401 lines (at most 400: split it into rooms)"]


def test_a_patch_outside_an_auto_upgrade_workflow_is_named(tmp_path: Path) -> None:
    run = tmp_path / "governed_run.py"
    run.write_text("from temporalio import workflow\n\n\ndef f():\n    return workflow.patched('x')\n")
    rollout = tmp_path / "rollout.py"
    rollout.write_text("from temporalio.workflow import patched\n\n\ndef g():\n    return patched('y')\n")
    found = architecture.patches_outside([run, rollout], allowed=[rollout], root=tmp_path)
    assert len(found) == 1
    assert found[0].startswith("governed_run.py:5: workflow.patched outside an AUTO_UPGRADE workflow's module")


def test_only_the_auto_upgrade_workflows_and_the_handlers_may_patch() -> None:
    names = sorted({p.name for p in architecture.may_patch()})
    # rollout_controls.py: RolloutWorkflow's operator commands, a base class of it (AUTO_UPGRADE too).
    assert names == ["handlers.py", "notify.py", "rollout.py", "rollout_controls.py", "standing_grant.py"]
