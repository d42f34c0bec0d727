"""Strict loading: every broken document is refused with a message naming the field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from govflow.policies import PolicyError, load_policy, parse_policy
from tests.unit.policy_docs import BASE, broken

CASES: list[tuple[str, str, str]] = [
    # (id, document, expected fragment of the first message)
    (
        "unknown-top-key",
        BASE + "colour: blue\n",
        "colour (line 49): unknown key 'colour'; valid keys here: version",
    ),
    (
        "unknown-nested-key",
        broken("  team: ops\n", "  team: ops\n  teem: x\n"),
        "owner.teem (line 5): unknown key 'teem'",
    ),
    ("wrong-version", broken("version: 1", "version: 2"), "version (line 1): 2 is not allowed"),
    (
        "missing-owner",
        broken("owner:\n  team: ops\n  contact: ops@example.com\n", ""),
        "owner (line 1): 'owner' is required",
    ),
    (
        "missing-contact",
        broken("  contact: ops@example.com\n", ""),
        "owner.contact (line 3): 'contact' is required",
    ),
    (
        "bad-name",
        broken("name: test-policy", "name: Test Policy"),
        "name (line 2): String should match pattern",
    ),
    (
        "no-people",
        broken(
            "    - {id: alice, name: Alice, roles: [lead]}\n    - {id: bob, name: Bob, roles: [lead]}\n    - {id: carol, name: Carol, roles: [agent]}\n",
            "    []\n",
        ).replace("  people:\n    []", "  people: []"),
        "reviewers.people (line 8)",
    ),
    (
        "undefined-role-on-person",
        broken("{id: carol, name: Carol, roles: [agent]}", "{id: carol, name: Carol, roles: [agnet]}"),
        "reviewers.people[2].roles (line 11): role 'agnet' is not defined",
    ),
    (
        "undefined-role-in-approval",
        broken("      roles: [lead]\n      quorum: 2", "      roles: [leed]\n      quorum: 2"),
        "actions[0].approval.roles (line 26): role 'leed' is not defined",
    ),
    (
        "undefined-reviewer",
        broken("      roles: [lead]\n      quorum: 2", "      reviewers: [zed]\n      quorum: 1"),
        "actions[0].approval.reviewers (line 26): reviewer 'zed' is not in reviewers.people",
    ),
    (
        "quorum-too-large",
        broken("quorum: 2", "quorum: 3"),
        "actions[0].approval.quorum (line 27): quorum 3 is larger than the 2 people who can approve",
    ),
    ("quorum-zero", broken("quorum: 2", "quorum: 0"), "actions[0].approval.quorum (line 27): 0 is below 1"),
    (
        "approval-nobody",
        broken("      roles: [lead]\n      quorum: 2", "      quorum: 2"),
        "actions[0].approval (line 25): an approval names no reviewers and no roles",
    ),
    (
        "bad-expiry",
        broken("expires_after: 4h", "expires_after: soon"),
        "actions[0].approval.expires_after (line 28): 'soon' is not a duration",
    ),
    (
        "missing-expiry",
        broken("      expires_after: 4h\n", ""),
        "actions[0].approval.expires_after (line 25): 'expires_after' is required",
    ),
    (
        "bad-on-expiry",
        broken("      expires_after: 4h\n", "      expires_after: 4h\n      on_expiry: ignore\n"),
        "actions[0].approval.on_expiry (line 29): 'ignore' is not allowed",
    ),
    (
        "escalation-undefined-role",
        broken(
            "      expires_after: 4h\n",
            "      expires_after: 4h\n      on_expiry: {to_role: boss, expires_after: 1h}\n",
        ),
        "actions[0].approval.on_expiry.to_role (line 29): role 'boss' is not defined",
    ),
    (
        "bad-risk",
        broken("    risk: high", "    risk: extreme"),
        "actions[0].risk (line 24): 'extreme' is not allowed",
    ),
    (
        "rule-without-grant",
        broken(
            "match: {system: crm, resource: contact, operations: [update]}",
            "match: {system: erp, resource: order, operations: [update]}",
        ),
        "actions[1].match (line 30): rule 'notes' covers erp.order, which no grant covers",
    ),
    (
        "bad-operation",
        broken("operations: [read, update]", "operations: [read, upsert]"),
        "grants[0].operations[1] (line 19): 'upsert' is not allowed",
    ),
    (
        "write-grant-without-fields",
        broken("    fields: [status, note]\n", ""),
        "grants[0] (line 16): grant 'contacts' allows writes (read, update) but lists no fields",
    ),
    (
        "duplicate-grant",
        broken("grants:\n", "grants:\n  - {name: contacts, system: crm, resource: contact, operations: [read]}\n"),
        "grants (line 15): grant 'contacts' is defined 2 times",
    ),
    (
        "duplicate-person",
        broken("    - {id: bob, name: Bob, roles: [lead]}", "    - {id: alice, name: Bob, roles: [lead]}"),
        "reviewers.people (line 8): person 'alice' is defined 2 times",
    ),
    (
        "duplicate-key",
        broken("system_of_record: crm\n", "system_of_record: crm\nsystem_of_record: erp\n"),
        "broken.yaml: line 7: key 'system_of_record' appears twice",
    ),
    (
        "fraction-above-one",
        broken("{name: full, live_fraction: 1.0}", "{name: full, live_fraction: 1.5}"),
        "rollout.stages[1].live_fraction (line 40): 1.5 is above 1.0",
    ),
    (
        "stages-fall",
        broken(
            "    - {name: full, live_fraction: 1.0}\n",
            "    - {name: full, live_fraction: 1.0}\n    - {name: back, live_fraction: 0.5}\n",
        ),
        "rollout.stages[2].live_fraction (line 41): 0.5 is below the previous stage's 1.0",
    ),
    (
        "stages-never-full",
        broken("{name: full, live_fraction: 1.0}", "{name: full, live_fraction: 0.5}"),
        "rollout.stages[1].live_fraction (line 40): the last stage has live fraction 0.5; stages must rise to 1.0",
    ),
    (
        "no-stages",
        broken(
            "  stages:\n    - {name: shadow, live_fraction: 0.0, min_runs: 10}\n    - {name: full, live_fraction: 1.0}\n",
            "  stages: []\n",
        ),
        "rollout.stages (line 38): needs at least 1 item(s); it is empty",
    ),
    (
        "promotion-without-promoters",
        broken(
            "{name: shadow, live_fraction: 0.0, min_runs: 10}",
            "{name: shadow, live_fraction: 0.0, min_runs: 10, gate: approval}",
        ),
        "rollout.stages[0] (line 39): stage 'shadow' asks for promotion approval but names no promoters",
    ),
    (
        "unknown-promoter",
        broken(
            "{name: shadow, live_fraction: 0.0, min_runs: 10}",
            "{name: shadow, live_fraction: 0.0, min_runs: 10, gate: approval, promoters: [zed]}",
        ),
        "rollout.stages[0].promoters (line 39): reviewer 'zed' is not in reviewers.people",
    ),
    (
        "stop-rule-unknown-metric",
        broken("{when: pass-rate, action: pause}", "{when: pass-rat, action: pause}"),
        "stop_rules[0].when (line 42): 'pass-rat' is not a quality window rule",
    ),
    (
        "stop-rule-bad-action",
        broken("{when: pass-rate, action: pause}", "{when: pass-rate, action: shrug}"),
        "stop_rules[0].action (line 42): 'shrug' is not allowed",
    ),
    (
        "rate-threshold-above-one",
        broken("threshold: 0.8", "threshold: 80"),
        "quality.window[0] (line 36): rule 'pass-rate': threshold 80.0 is a rate and must lie in [0, 1]",
    ),
    (
        "min-sample-above-window",
        broken("window: 50, min_sample: 10", "window: 5, min_sample: 10"),
        "quality.window[0] (line 36): rule 'pass-rate': min_sample 10 is larger than window 5",
    ),
    (
        "mean-without-score",
        broken("metric: pass_rate", "metric: mean_score, statistic: normal"),
        "quality.window[0] (line 36): rule 'pass-rate': mean_score needs `score`",
    ),
    (
        "check-without-bound",
        broken("{name: confident, score: confidence, min: 0.7}", "{name: confident, score: confidence}"),
        "quality.checks[0] (line 34): check 'confident' sets neither min nor max",
    ),
    (
        "exception-route-nobody",
        broken("exceptions:\n  roles: [lead]\n", "exceptions:\n"),
        "exceptions (line 43): the exception route names no reviewers and no roles",
    ),
    (
        "exception-bad-kind",
        broken("exceptions:\n", "exceptions:\n  handles: [bad_vibes]\n"),
        "exceptions.handles[0] (line 44): 'bad_vibes' is not allowed",
    ),
    (
        "retention-zero",
        broken("retention_days: 365", "retention_days: 0"),
        "evidence.retention_days (line 47): 0 is below 1",
    ),
    (
        "bad-public-key",
        broken(
            "{id: alice, name: Alice, roles: [lead]}",
            "{id: alice, name: Alice, roles: [lead], public_key: bm90IGEga2V5}",
        ),
        "reviewers.people[0].public_key (line 9): not an Ed25519 public key",
    ),
    (
        "norway-yes-is-not-a-bool",
        broken("quorum: 2", "quorum: 2\n      signature_required: yes"),
        "actions[0].approval.signature_required (line 28): Input should be a valid boolean",
    ),
    (
        "both-deny-and-approval",
        broken(
            "    risk: low\n",
            "    risk: low\n    deny: no notes\n    approval: {roles: [lead], expires_after: 1h}\n",
        ),
        "actions[1] (line 29): rule 'notes' has both approval and deny",
    ),
    (
        "gate-negative-margin",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, margin: -0.05"),
        "quality.window[0].margin (line 36): -0.05 is not above 0.0",
    ),
    (
        "gate-zero-margin",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, margin: 0"),
        "quality.window[0].margin (line 36): 0 is not above 0.0",
    ),
    (
        "gate-false-pause-rate-zero",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, false_pauses: {at_most: 0}"),
        "quality.window[0].false_pauses.at_most (line 36): 0 is not above 0.0",
    ),
    (
        "gate-false-pause-rate-one",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, false_pauses: {at_most: 1}"),
        "quality.window[0].false_pauses.at_most (line 36): 1 is not below 1.0",
    ),
    (
        "gate-unknown-method",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, method: vibes"),
        "quality.window[0].method (line 36): 'vibes' is not allowed",
    ),
    (
        "gate-levels-outside-rates",
        broken("window: 50, min_sample: 10", "window: 50, min_sample: 10, drop: 0.9"),
        "quality.window[0] (line 36): rule 'pass-rate': the level to catch (threshold and drop) is",
    ),
    (
        "void-without-create",
        broken("    fields: [status, note]\n", "    fields: [status, note]\n    void: {status: cancelled}\n"),
        "grant 'contacts' says how to void a created record, so it needs both create and update among its "
        "operations (it has read, update)",
    ),
    (
        "void-outside-fields",
        broken(
            "    operations: [read, update]\n    fields: [status, note]\n",
            "    operations: [read, create, update]\n    fields: [status, note]\n    void: {deleted: true}\n",
        ),
        "grant 'contacts': void sets deleted, outside the grant's fields (status, note)",
    ),
    (
        "people-outside-reviewers",
        broken("reviewers:\n  people:", "people:\n  people:"),
        "people (line 7): unknown key 'people' ('people' goes under 'reviewers'); valid keys here: version",
    ),
    ("misspelt-top-key", broken("stop_rules:", "stop_rule:"), "unknown key 'stop_rule' (did you mean 'stop_rules'?)"),
    (
        "misspelt-condition-field",
        broken("when: {status: churn-risk}", "when: {stauts: churn-risk}"),
        "actions[0].match.when.stauts (line 23): rule 'status-change' tests field 'stauts', which no action it "
        "covers can carry: a grant lets a run write note, status",
    ),
    (
        "misspelt-operator",
        broken("when: {status: churn-risk}", "when: {status: {greater_than: 3}}"),
        "actions[0].match.when.status (line 23): unknown comparison 'greater_than': the comparisons are gt, gte, "
        "lt, lte, ne, in",
    ),
    (
        "misspelt-change-test",
        broken("when: {status: churn-risk}", "changes: {status: {rises: 3}}"),
        "unknown change test 'rises': the change tests are rises_by, falls_by, grows_by_pct, from, to",
    ),
    (
        "nobody-decides-exceptions",
        broken("exceptions:\n  roles: [lead]", "exceptions:\n  roles: [auditor]").replace(
            "    - {id: agent}\n", "    - {id: agent}\n    - {id: auditor}\n"
        ),
        "exceptions (line 44): nobody may decide an exception: no person in reviewers.people holds auditor",
    ),
    ("not-a-mapping", "- just\n- a list\n", "broken.yaml: line 1: a policy is a YAML mapping"),
    ("not-yaml", "version: [1\n", "not valid YAML"),
]


@pytest.mark.parametrize(("document", "fragment"), [(d, f) for _, d, f in CASES], ids=[c[0] for c in CASES])
def test_a_broken_document_is_refused_naming_the_field(document: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, source="broken.yaml")
    messages = [str(issue) for issue in caught.value.issues]
    assert any(fragment in m for m in messages), messages
    assert all(m.startswith("policy broken.yaml: ") for m in messages)


def test_there_are_at_least_thirty_broken_documents() -> None:
    assert len(CASES) >= 30


def test_the_base_document_is_valid() -> None:
    assert parse_policy(BASE).name == "test-policy"


def test_every_error_in_a_document_is_listed() -> None:
    doc = broken("quorum: 2", "quorum: 0").replace("retention_days: 365", "retention_days: 0")
    with pytest.raises(PolicyError) as caught:
        parse_policy(doc, source="two.yaml")
    paths = [issue.path for issue in caught.value.issues]
    assert "actions[0].approval.quorum" in paths
    assert "evidence.retention_days" in paths


# --- bounded parsing: a policy file is input too ------------------------------------------------


def test_nested_aliases_are_refused_at_once_with_the_line() -> None:
    # The "billion laughs": each line doubles the last; expanded it would not fit in memory.
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    started = time.monotonic()
    with pytest.raises(PolicyError) as caught:
        parse_policy("\n".join(lines), "laughs.yaml")
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == (
        "policy laughs.yaml: line 2: YAML aliases (*name) are not allowed in a policy: write the value out"
    )


def test_an_oversized_or_non_utf8_policy_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 30_000)
    with pytest.raises(PolicyError, match=r"big\.yaml: the file is over 262,144 bytes"):
        load_policy(big)
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("version: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin1\.yaml: not UTF-8 text: byte 0xe9 at line 2"):
        load_policy(latin)


def test_a_misspelt_operator_is_one_error_not_one_per_kind_of_value() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(broken("when: {status: churn-risk}", "when: {status: {greater_than: 3}}"), source="b.yaml")
    assert len(caught.value.issues) == 1, caught.value.issues
