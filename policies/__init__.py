"""Policies: the schema, loader and engine that decide what a governed run may do.

Pure Python: no Temporal, no I/O in the engine, so workflows can call it
deterministically. (The loader reads files; the engine never does.)
"""

from __future__ import annotations

from govflow.policies.actions import Action, RunContext
from govflow.policies.audit import AuditLine, audit
from govflow.policies.digest import canonical_json, digest
from govflow.policies.engine import (
    Allow,
    ApprovalAttempt,
    AttemptOutcome,
    Decision,
    Deny,
    Gate,
    NeedsApproval,
    check_attempt,
    decide,
    decision_rule,
    escalate,
    make_gate,
    quorum_met,
)
from govflow.policies.errors import GovflowError
from govflow.policies.loader import PolicyError, PolicyIssue, load_policy, parse_policy, policy_digest, policy_from_json
from govflow.policies.model import Policy
from govflow.policies.scope import ScopeResult, check_scope, record_images
from govflow.policies.signing import act_message, signed_act_problem, signing_message
from govflow.policies.stats import WindowCounts, WindowVerdict, evaluate_window, run_checks, wilson_interval

__all__ = [
    "Action",
    "Allow",
    "ApprovalAttempt",
    "AttemptOutcome",
    "AuditLine",
    "Decision",
    "Deny",
    "Gate",
    "GovflowError",
    "NeedsApproval",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "RunContext",
    "ScopeResult",
    "WindowCounts",
    "WindowVerdict",
    "act_message",
    "audit",
    "canonical_json",
    "check_attempt",
    "check_scope",
    "decide",
    "decision_rule",
    "digest",
    "escalate",
    "evaluate_window",
    "load_policy",
    "make_gate",
    "parse_policy",
    "policy_digest",
    "policy_from_json",
    "quorum_met",
    "record_images",
    "run_checks",
    "signed_act_problem",
    "signing_message",
    "wilson_interval",
]
