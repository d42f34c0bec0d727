"""Signed checkpoints catch what the chain alone cannot: a rewound tail and a consistent rehash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.chain import event_hash
from tests.integration.test_evidence_store import _full_run, _tamper


def _govflow(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env["GOVFLOW_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "govflow", *args], env=env, capture_output=True, text=True, timeout=60)


def _checkpoint(database_url: str, tmp_path: Path, name: str = "auditor") -> tuple[Path, Path]:
    key = tmp_path / f"{name}.key"
    made = _govflow(database_url, "keys", "new", str(key))
    assert made.returncode == 0, made.stderr
    out = tmp_path / "checkpoint.json"
    done = _govflow(database_url, "evidence", "checkpoint", "--key", str(key), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return key, out


def _verify(database_url: str, checkpoint: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return _govflow(database_url, "evidence", "verify", "--checkpoint", str(checkpoint), "--public-key", str(key))


async def _two_runs(store: EvidenceStore) -> None:
    await _full_run(store, "run-1")
    await _full_run(store, "run-2")


async def test_a_checkpoint_holds_while_chains_grow(store: EvidenceStore, database_url: str, tmp_path: Path) -> None:
    await _two_runs(store)
    key, checkpoint = _checkpoint(database_url, tmp_path)
    heads = json.loads(checkpoint.read_text())["checkpoint"]["heads"]
    assert sorted((h["stream_id"], h["seq"]) for h in heads) == [("run-1", 6), ("run-2", 6)]
    # Rows appended after the checkpoint chain on from it: still fine.
    await store.append_event("run", "run-2", 7, "late_note", datetime.now(UTC), {"note": "after"})
    done = _verify(database_url, checkpoint, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 2 streams hold their checkpointed rows and verify" in done.stdout


async def test_a_rewound_tail_verifies_alone_but_not_against_the_checkpoint(
    store: EvidenceStore, database_url: str, tmp_path: Path
) -> None:
    await _two_runs(store)
    key, checkpoint = _checkpoint(database_url, tmp_path)
    # A superuser removes run-1's last row and rewinds its head to row 5.
    await _tamper(
        database_url,
        "DELETE FROM evidence_events WHERE stream_id = 'run-1' AND seq = 6;"
        "UPDATE chain_heads SET seq = 5, hash = (SELECT hash FROM evidence_events "
        "WHERE stream_id = 'run-1' AND seq = 5) WHERE stream_id = 'run-1';",
    )
    alone = _govflow(database_url, "evidence", "verify", "run-1")
    assert alone.returncode == 0, "the premise: the chain alone cannot see a rewound tail"
    done = _verify(database_url, checkpoint, key)
    assert done.returncode == 1
    assert "1 of 2 streams do NOT match" in done.stdout
    assert "run run-1: row 6 was in the checkpoint and is gone" in done.stdout


async def test_a_consistent_rehash_verifies_alone_but_not_against_the_checkpoint(
    store: EvidenceStore, database_url: str, tmp_path: Path
) -> None:
    await _two_runs(store)
    key, checkpoint = _checkpoint(database_url, tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM evidence_events WHERE stream_id = 'run-1' AND seq = 6")
    finally:
        await conn.close()
    forged = {"outcome": "skipped"}
    new_hash = event_hash("run", "run-1", 6, "run_finished", row["occurred_at"], forged, row["prev_hash"])
    await _tamper(
        database_url,
        f"UPDATE evidence_events SET payload = '{json.dumps(forged)}', hash = '{new_hash}' "
        "WHERE stream_id = 'run-1' AND seq = 6;"
        f"UPDATE chain_heads SET hash = '{new_hash}' WHERE stream_id = 'run-1';",
    )
    alone = _govflow(database_url, "evidence", "verify", "run-1")
    assert alone.returncode == 0, "the premise: a consistent rehash verifies inside the database"
    done = _verify(database_url, checkpoint, key)
    assert done.returncode == 1
    assert "run run-1: row 6 should carry" in done.stdout
    assert "the chain was rewritten" in done.stdout


async def test_a_checkpoint_signed_by_another_key_or_edited_is_refused(
    store: EvidenceStore, database_url: str, tmp_path: Path
) -> None:
    await _two_runs(store)
    trusted, checkpoint = _checkpoint(database_url, tmp_path)
    # Whoever rewrote the database signs a fresh checkpoint with their own key.
    (tmp_path / "mallory").mkdir()
    _, forged = _checkpoint(database_url, tmp_path / "mallory", "mallory")
    done = _verify(database_url, forged, trusted)
    assert done.returncode == 1
    assert "not by the trusted key" in done.stderr
    # An edited checkpoint (a head's hash changed to match a rewrite) breaks its signature.
    doc = json.loads(checkpoint.read_text())
    doc["checkpoint"]["heads"][0]["hash"] = "0" * 64
    checkpoint.write_text(json.dumps(doc))
    done = _verify(database_url, checkpoint, trusted)
    assert done.returncode == 1
    assert "the signature does not match its content" in done.stderr
    # Without a trusted key there is nothing to check against.
    done = _govflow(database_url, "evidence", "verify", "--checkpoint", str(checkpoint))
    assert done.returncode == 1
    assert "needs --public-key" in done.stderr
    assert "Traceback" not in done.stderr


async def test_verify_rollout_checks_every_run_it_admitted(store: EvidenceStore, database_url: str) -> None:
    from govflow.activities.evidence import RunRecord

    at = datetime.now(UTC)
    await store.append_event("rollout", "rollout-x", 1, "rollout_started", at, {"stage": "shadow"})
    for i in range(12):
        await store.start_run(RunRecord(
            run_id=f"run-x{i}", task="support-triage", task_version="1", policy_digest="p" * 64, item_key=f"T{i}",
            requester="priya", stage="shadow", mode="shadow", started_at=at, rollout_id="rollout-x",
        ))  # fmt: skip
        await store.append_event("run", f"run-x{i}", 2, "run_finished", at, {"outcome": "shadowed"})
    done = _govflow(database_url, "evidence", "verify", "rollout-x", "--rollout")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rollout rollout-x: chain verifies (1 rows); all 12 runs it admitted verify" in done.stdout
    await _tamper(database_url, "UPDATE evidence_events SET payload = '{\"outcome\": \"published\"}' "
                  "WHERE stream_id = 'run-x7' AND seq = 2")  # fmt: skip
    done = _govflow(database_url, "evidence", "verify", "rollout-x", "--rollout")
    assert done.returncode == 1
    assert "1 of 12 runs do NOT" in done.stdout
    assert "run run-x7: row 2 (run_finished) was changed" in done.stdout
