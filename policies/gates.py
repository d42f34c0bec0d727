"""The policy's quality rules and rollout plan: what each run is checked for, what a rollout measures over
its runs, the stages it moves through, and what stops it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import (
    Field,
    StrictBool,
    ValidationInfo,
    model_validator,
)

from govflow.policies.durations import Duration
from govflow.policies.terms import Name, Strict


class ScoreCheck(Strict):
    """A per-run check on one of the task's quality scores."""

    name: Name
    score: Name
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> ScoreCheck:
        if self.min is None and self.max is None:
            raise ValueError(f"check {self.name!r} sets neither min nor max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"check {self.name!r}: min {self.min} is above max {self.max}")
        return self


Metric = Literal["pass_rate", "mean_score", "override_rate", "error_rate"]


class FalsePauses(Strict):
    """What a sequential rule tolerates, in an operator's terms: at most ``at_most`` chance of a pause
    by noise within ``per_runs`` runs while quality is at the threshold plus the margin (or better)."""

    at_most: float = Field(default=0.01, gt=0.0, lt=1.0)
    per_runs: int = Field(default=10_000, ge=10)


class WindowRule(Strict):
    """A quality rule over a stage's runs.

    ``method: cusum`` (the default) watches every run with a CUSUM and promotes on an anytime-valid
    bound, both valid however often they are checked (``policies.stats``). ``method: window`` is the
    earlier sliding window re-tested after each run, kept for comparison; its error rates grow with
    every check.
    """

    name: Name
    metric: Metric
    score: Name | None = Field(default=None, description="For mean_score: which score.")
    threshold: float
    window: int = Field(ge=1, description="How many recent runs the rule looks at.")
    min_sample: int = Field(ge=1, description="Fewer runs than this is inconclusive, never pass.")
    statistic: Literal["wilson", "normal"] = "wilson"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    method: Literal["cusum", "window"] = "cusum"
    margin: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="cusum: quality this far on the good side of the threshold is fine."
    )
    drop: float = Field(
        default=0.10, gt=0.0, lt=1.0, description="cusum: the smallest fall past the threshold worth catching fast."
    )
    false_pauses: FalsePauses = FalsePauses()
    wrong_promotions: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="cusum: chance of promoting while quality is on the bad side."
    )

    @model_validator(mode="after")
    def _coherent(self, info: ValidationInfo) -> WindowRule:
        if self.metric == "mean_score":
            if self.score is None:
                raise ValueError(f"rule {self.name!r}: mean_score needs `score`")
            if self.statistic != "normal":
                raise ValueError(f"rule {self.name!r}: mean_score uses statistic normal (wilson is for rates)")
        else:
            if self.score is not None:
                raise ValueError(f"rule {self.name!r}: `score` is only for mean_score")
            if self.statistic != "wilson":
                raise ValueError(f"rule {self.name!r}: rates use statistic wilson")
            if not 0.0 <= self.threshold <= 1.0:
                raise ValueError(f"rule {self.name!r}: threshold {self.threshold} is a rate and must lie in [0, 1]")
        if self.min_sample > self.window:
            raise ValueError(f"rule {self.name!r}: min_sample {self.min_sample} is larger than window {self.window}")
        # Checked for policy files (the loader asks for it), not for policy JSON read back from a running
        # workflow's history: a policy written before `method` existed must still replay.
        if self.method == "cusum" and (info.context or {}).get("new_policy"):
            good = self.threshold + self.margin if self.higher_is_better else self.threshold - self.margin
            bad = self.threshold - self.drop if self.higher_is_better else self.threshold + self.drop
            lo, hi = (0.0, 1.0)
            if self.metric != "mean_score" or 0.0 <= self.threshold <= 1.0:
                for what, value in (("the level judged fine (threshold and margin)", good),
                                    ("the level to catch (threshold and drop)", bad)):  # fmt: skip
                    if not lo < value < hi:
                        raise ValueError(
                            f"rule {self.name!r}: {what} is {value:.3f}, outside (0, 1): nothing could be "
                            "told apart; choose a smaller margin or drop"
                        )
            else:
                raise ValueError(f"rule {self.name!r}: method cusum reads mean scores in [0, 1]; threshold is not")
        return self

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("pass_rate", "mean_score")


class HoldFailed(Strict):
    """A live write of a run whose quality checks failed waits for an approver who sees the failures: its
    gates list them, and each approval records them as seen; a write no rule gates gets a gate of its own
    (rule ``failed-quality-checks``) for these people."""

    reviewers: tuple[Name, ...] = ()
    roles: tuple[Name, ...] = ()
    quorum: int = Field(default=1, ge=1)
    expires_after: Duration = Field(default=timedelta(hours=4))


class Quality(Strict):
    checks: tuple[ScoreCheck, ...] = ()
    window: tuple[WindowRule, ...] = ()
    hold_failed: HoldFailed | None = Field(
        default=None, description="Live writes of a run whose checks failed wait for someone who sees the failures."
    )
    false_pauses: FalsePauses | None = Field(
        default=None,
        description="One false-pause budget for the whole policy: split evenly over the sequential rules that "
        "state none of their own (what the rules state adds up: a pause by any rule pauses the rollout).",
    )

    @model_validator(mode="after")
    def _split_budget(self) -> Quality:
        budget = self.false_pauses
        if budget is None:
            return self
        sequential = [w for w in self.window if w.method == "cusum"]
        own = [w for w in sequential if "false_pauses" in w.model_fields_set]
        taken = sum(w.false_pauses.at_most for w in own)
        if taken > budget.at_most * (1 + 1e-9):
            raise ValueError(
                f"the rules' own false_pauses add up to {taken:.4%}, more than the policy's budget of "
                f"{budget.at_most:.4%}: lower them, or raise quality.false_pauses.at_most"
            )
        if any(w.false_pauses.per_runs < budget.per_runs for w in own):
            raise ValueError(
                f"a rule states its false pauses over fewer runs than the policy's budget ({budget.per_runs:,}): "
                "state them over at least as many"
            )
        rest = [w for w in sequential if w not in own]
        if not rest:
            return self
        if taken >= budget.at_most * (1 - 1e-9):
            raise ValueError(f"the rules' own false_pauses spend the whole budget; {rest[0].name} would have none")
        share = FalsePauses(at_most=(budget.at_most - taken) / len(rest), per_runs=budget.per_runs)
        # Each share is the rule's own from here on (stated in the policy's JSON, so it reads back the same).
        window = tuple(w.model_copy(update={"false_pauses": share}) if w in rest else w for w in self.window)
        for w in window:
            w.model_fields_set.add("false_pauses")
        object.__setattr__(self, "window", window)
        return self

    def false_pause_bound(self) -> tuple[float, int] | None:
        """The whole policy's false-pause bound: ``(chance, runs)``, the sum over its sequential rules (a pause
        by any one pauses the rollout) within the fewest runs any of them states; None without such rules."""
        sequential = [w for w in self.window if w.method == "cusum"]
        if not sequential:
            return None
        return sum(w.false_pauses.at_most for w in sequential), min(w.false_pauses.per_runs for w in sequential)


class Stage(Strict):
    name: Name
    live_fraction: float = Field(ge=0.0, le=1.0)
    min_runs: int = Field(default=0, ge=0)
    min_duration: Duration | None = None
    gate: Literal["auto", "approval", "auto+approval"] = "auto"
    promoters: tuple[Name, ...] = ()

    @model_validator(mode="after")
    def _promoters(self) -> Stage:
        if "approval" in self.gate and not self.promoters:
            raise ValueError(f"stage {self.name!r} asks for promotion approval but names no promoters")
        return self


class BacktestBar(Strict):
    """What a backtest of the exact candidate (task version and policy) must show before its rollout starts."""

    min_agreement: float = Field(default=0.0, ge=0.0, le=1.0, description="With the actions reviewers approved.")
    min_decided: int = Field(default=0, ge=0, description="At least this many human decisions behind it.")
    max_rejected_proposed: int | None = Field(
        default=None, ge=0, description="At most this many actions reviewers rejected, proposed again."
    )


class Rollout(Strict):
    stages: tuple[Stage, ...] = Field(min_length=1)
    backtest: BacktestBar | None = Field(
        default=None, description="A rollout starts only with a backtest on record meeting these bars."
    )
    restore_by: tuple[Name, ...] = Field(
        default=(),
        description="People or roles who may undo a rollout's live writes (rollback --data, which writes to the "
        "system of record); unset: whoever may resume (every stage's promoters). A plain rollback stays open.",
    )
    required: StrictBool = Field(
        default=True,
        description="A live run needs a running rollout of its task version; without one it is refused. "
        "The default: set false only where live runs by hand are meant (a walkthrough, a back-office tool).",
    )

    @property
    def resumers(self) -> frozenset[str]:
        """Who may resume a pause: every stage's promoters (none: a pause is never lifted)."""
        return frozenset(p for stage in self.stages for p in stage.promoters)


class StopRule(Strict):
    when: Name = Field(description="A quality window rule; its breach triggers this stop rule.")
    action: Literal["pause", "rollback"]
