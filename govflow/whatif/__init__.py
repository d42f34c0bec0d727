"""Policy what-if: what a candidate policy would have done to a task's past runs and rollouts
(`govflow policy whatif`). ``collect`` reads and verifies the evidence; ``whatif`` computes over it."""

from __future__ import annotations

from govflow.whatif.collect import Evidence, PastAction, WhatIfError, collect
from govflow.whatif.report import ActionChange, RolloutReplay, WhatIfReport, redecide, render, whatif

__all__ = [
    "ActionChange",
    "Evidence",
    "PastAction",
    "RolloutReplay",
    "WhatIfError",
    "WhatIfReport",
    "collect",
    "redecide",
    "render",
    "whatif",
]
