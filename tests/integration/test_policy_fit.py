"""`govflow policy check --app`: a policy held against its task's data, each finding with file, path and line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from govflow.init import create
from govflow.policies.errors import GovflowError
from tests.conftest import free_port


@pytest.fixture
def package(tmp_path: Path) -> Path:
    create("typo_leads", tmp_path)
    return tmp_path / "typo_leads"


async def _check(package: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(GOVFLOW_DATABASE_URL=database_url, TYPO_LEADS_DATABASE_URL=database_url, PYTHONPATH=str(package))
    return subprocess.run([sys.executable, "-m", "govflow", "policy", "check", "--app", "typo_leads.app:build"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=package)  # fmt: skip


def _plant(package: Path, old: str, new: str) -> int:
    policy = package / "typo_leads" / "policy.yaml"
    text = policy.read_text()
    assert text.count(old) == 1, old
    policy.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


async def test_each_planted_typo_is_found_with_its_path_and_line(package: Path, empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    await conn.execute("CREATE TABLE lead (id text PRIMARY KEY, company text, employees int, segment text, score int)")
    await conn.close()
    policy = package / "typo_leads" / "policy.yaml"
    clean = policy.read_text()
    done = await _check(package, empty_database_url)
    assert (done.returncode, done.stdout.strip()) == (0, f"task typo-leads v1: {policy}: ok"), done.stderr

    # A grant's field that is not a column, and stages nobody could resume after a pause: the data's findings.
    fields_line = _plant(package, "fields: [segment, score]", "fields: [segment, scroe]")
    stage_line = _plant(package, "promoters: [alice]}", "}")
    done = await _check(package, empty_database_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"policy {policy} (task typo-leads v1): grants[0].fields[1] (line {fields_line}): 'scroe' is not a "
        "field of typo_leads.lead (typo_leads.lead has company, employees, id, score, segment)" in done.stdout
    )
    assert f"rollout.stages (line {stage_line - 1}): no stage names promoters, so a pause" in done.stdout
    assert "task typo-leads v1" in done.stdout.splitlines()[-1]
    assert "2 finding(s)" in done.stdout.splitlines()[-1]
    # The worker says the same as it starts (here, before it finds no Temporal to serve).
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(GOVFLOW_DATABASE_URL=empty_database_url, TYPO_LEADS_DATABASE_URL=empty_database_url,
               PYTHONPATH=str(package), GOVFLOW_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
               GOVFLOW_METRICS_PORT="0", GOVFLOW_SDK_METRICS_PORT="0")  # fmt: skip
    started = subprocess.run([sys.executable, "-m", "govflow", "worker", "--app", "typo_leads.app:build"],
                             capture_output=True, text=True, timeout=120, env=env, cwd=package)  # fmt: skip
    assert started.returncode == 1
    assert (
        f"govflow: warning: policy {policy} (task typo-leads v1): grants[0].fields[1] (line {fields_line}): "
        "'scroe' is not a field" in started.stderr
    ), started.stderr

    # A rule's condition on a field no action carries, and a comparison that does not exist: the policy's own.
    for planted, says in (
        ("when: {segmnt: enterprise}", "actions[0].match.when.segmnt (line {line}): rule 'enterprise-lead' tests "
         "field 'segmnt', which no action it covers can carry: a grant lets a run write score, segment"),
        ("when: {segment: {greater_than: 3}}", "actions[0].match.when.segment (line {line}): unknown comparison "
         "'greater_than': the comparisons are gt, gte, lt, lte, ne, in"),
    ):  # fmt: skip
        policy.write_text(clean)
        line = _plant(package, "when: {segment: enterprise}", planted)
        done = await _check(package, empty_database_url)
        assert done.returncode == 1
        assert says.format(line=line) in done.stdout, done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_init_refuses_a_name_that_would_hide_a_module_and_a_folder_in_use(tmp_path: Path) -> None:
    for name, says in (("policies", "would hide a module"), ("json", "would hide a module"),
                       ("Acme-Leads", "is not a package name")):  # fmt: skip
        with pytest.raises(GovflowError, match=says):
            create(name, tmp_path)
    (tmp_path / "acme_leads").mkdir()
    (tmp_path / "acme_leads" / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "govflow", "init", "acme_leads", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "exists and is not empty; nothing was written" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["acme_leads"]
    assert [p.name for p in (tmp_path / "acme_leads").iterdir()] == ["notes.txt"]
