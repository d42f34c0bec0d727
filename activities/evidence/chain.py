"""The hash chain: how a row's hash is computed and how a stream is verified.

Pure functions, shared by the store (when appending) and by ``verify``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from govflow.policies.digest import canonical_json, sha256_hex

Stream = Literal["run", "rollout", "notification", "grant", "refused_start", "reviewer", "policy", "backtest"]
GENESIS = "0" * 64


def timestamp_text(moment: datetime) -> str:
    """The one text form of a timestamp that goes into a hash (UTC, microseconds)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone; evidence needs UTC")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class EvidenceEvent(BaseModel):
    """One link of a chain, before it is stored."""

    model_config = ConfigDict(frozen=True)

    stream: Stream
    stream_id: str = Field(min_length=1)
    seq: int = Field(ge=1)
    kind: str = Field(min_length=1)
    occurred_at: datetime
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        timestamp_text(value)
        return value.astimezone(UTC)

    def hash_with(self, prev_hash: str) -> str:
        return event_hash(
            self.stream,
            self.stream_id,
            self.seq,
            self.kind,
            self.occurred_at,
            self.payload,
            prev_hash,
        )


def event_hash(
    stream: str,
    stream_id: str,
    seq: int,
    kind: str,
    occurred_at: datetime,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "stream": stream,
        "stream_id": stream_id,
        "seq": seq,
        "kind": kind,
        "occurred_at": timestamp_text(occurred_at),
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }
    return sha256_hex(canonical_json(body))


class ChainProblem(BaseModel):
    """The first place a stream stops matching its chain."""

    model_config = ConfigDict(frozen=True)

    seq: int
    problem: str


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream: Stream
    stream_id: str
    rows: int
    problems: list[ChainProblem]

    @property
    def ok(self) -> bool:
        return self.rows > 0 and not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def problem(self) -> str | None:
        """The first problem in words; None when the chain verifies."""
        if self.ok:
            return None
        return self.first_problem.problem if self.first_problem else "no evidence rows"


def verify_rows(
    stream: Stream,
    stream_id: str,
    rows: Sequence[Mapping[str, Any]],
    head: tuple[int, str] | None,
) -> VerifyReport:
    """Recompute a stream's chain from its stored rows (ordered by seq).

    Detects an edited row (its content no longer gives its hash), a deleted
    row (a gap in seq, or a tail shorter than the recorded head), and
    reordered rows (a row's hash commits to its own seq and its predecessor).
    """
    problems: list[ChainProblem] = []
    if not rows:
        problems.append(ChainProblem(seq=0, problem=f"no evidence rows for {stream} {stream_id}"))
        return VerifyReport(stream=stream, stream_id=stream_id, rows=0, problems=problems)

    expected_seq = 1
    prev_hash = GENESIS
    for row in rows:
        seq = int(row["seq"])
        if seq != expected_seq:
            problems.append(
                ChainProblem(
                    seq=expected_seq,
                    problem=f"row {expected_seq} is missing: row {seq} follows row {expected_seq - 1}",
                )
            )
        if row["prev_hash"] != prev_hash:
            problems.append(
                ChainProblem(
                    seq=seq,
                    problem=f"row {seq} does not link to the row before it "
                    f"(prev_hash {str(row['prev_hash'])[:12]}, expected {prev_hash[:12]})",
                )
            )
        recomputed = event_hash(
            stream,
            stream_id,
            seq,
            row["kind"],
            row["occurred_at"],
            row["payload"],
            row["prev_hash"],
        )
        if recomputed != row["hash"]:
            problems.append(
                ChainProblem(
                    seq=seq,
                    problem=f"row {seq} ({row['kind']}) was changed: its content no longer "
                    f"matches its hash ({str(row['hash'])[:12]}, content gives {recomputed[:12]})",
                )
            )
        prev_hash = str(row["hash"])
        expected_seq = seq + 1

    last_seq = int(rows[-1]["seq"])
    if head is None:
        problems.append(ChainProblem(seq=last_seq, problem=f"the chain head of {stream} {stream_id} is missing"))
    else:
        head_seq, head_hash = head
        if head_seq > last_seq:
            problems.append(
                ChainProblem(
                    seq=last_seq + 1,
                    problem=f"row {last_seq + 1} is missing: the chain head records "
                    f"{head_seq} rows but the last row is {last_seq}",
                )
            )
        elif head_seq < last_seq:
            problems.append(
                ChainProblem(
                    seq=head_seq + 1,
                    problem=f"rows {head_seq + 1} to {last_seq} lie beyond the recorded chain head "
                    f"({head_seq}): they were added outside the evidence store",
                )
            )
        elif head_hash != prev_hash:
            problems.append(
                ChainProblem(
                    seq=last_seq,
                    problem=f"row {last_seq} does not match the recorded chain head",
                )
            )
    problems.sort(key=lambda p: p.seq)
    return VerifyReport(stream=stream, stream_id=stream_id, rows=len(rows), problems=problems)
