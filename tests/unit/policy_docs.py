"""A small valid policy, as text, for tests to break one way at a time."""

from __future__ import annotations

BASE = """\
version: 1
name: test-policy
owner:
  team: ops
  contact: ops@example.com
system_of_record: crm
reviewers:
  people:
    - {id: alice, name: Alice, roles: [lead]}
    - {id: bob, name: Bob, roles: [lead]}
    - {id: carol, name: Carol, roles: [agent]}
  roles:
    - {id: lead}
    - {id: agent}
grants:
  - name: contacts
    system: crm
    resource: contact
    operations: [read, update]
    fields: [status, note]
actions:
  - name: status-change
    match: {system: crm, resource: contact, operations: [update], when: {status: churn-risk}}
    risk: high
    approval:
      roles: [lead]
      quorum: 2
      expires_after: 4h
  - name: notes
    match: {system: crm, resource: contact, operations: [update]}
    risk: low
quality:
  checks:
    - {name: confident, score: confidence, min: 0.7}
  window:
    - {name: pass-rate, metric: pass_rate, threshold: 0.8, window: 50, min_sample: 10}
rollout:
  stages:
    - {name: shadow, live_fraction: 0.0, min_runs: 10}
    - {name: full, live_fraction: 1.0}
stop_rules:
  - {when: pass-rate, action: pause}
exceptions:
  roles: [lead]
  expires_after: 1d
evidence:
  retention_days: 365
  redact_fields: [email]
"""


def broken(old: str, new: str) -> str:
    """BASE with exactly one occurrence of ``old`` replaced by ``new``."""
    assert BASE.count(old) == 1, f"{old!r} occurs {BASE.count(old)} times in BASE"
    return BASE.replace(old, new)
