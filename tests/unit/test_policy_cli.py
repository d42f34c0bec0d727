"""`govflow policy check | explain | audit` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from govflow.policies import audit, load_policy, parse_policy
from tests.unit.policy_docs import BASE

EXAMPLES = sorted((Path(__file__).parents[2] / "policies" / "examples").glob("*.yaml"))


def govflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "govflow", *args], capture_output=True, text=True, timeout=60)


def test_both_examples_exist() -> None:
    assert [p.name for p in EXAMPLES] == ["invoice-matching.yaml", "support-triage.yaml"]


def test_check_passes_on_the_examples() -> None:
    done = govflow("policy", "check", *map(str, EXAMPLES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_audit_reports_no_blocking_gap_on_the_examples(example: Path) -> None:
    done = govflow("policy", "audit", str(example))
    assert done.returncode == 0, done.stdout
    assert "BLOCKING" not in done.stdout
    # support-triage runs live by hand (rollout.required: false) and trusts typed names, so the console
    # (or anyone sending Temporal updates) can vote as any reviewer, and its churn flag keeps out only the
    # requester, and nothing of #32/#33's (an unsigned restore, unseen failed checks, no backtest bar): seven
    # gaps. invoice-matching asks no backtest before a rollout: one.
    assert done.stdout.count("[ok      ]") == {"support-triage": 12, "invoice-matching": 18}[example.stem]
    assert done.stdout.count("[GAP     ]") == {"support-triage": 7, "invoice-matching": 1}[example.stem]
    asked = done.stdout.split("Can the reviewer console, or anyone who controls it, approve in a reviewer's name?")[1]
    answer = asked.split("\n")[1].strip()
    expected = {"support-triage": "yes: approvals are unsigned", "invoice-matching": "no: "}[example.stem]
    assert answer.startswith(expected), answer


def test_check_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("quorum: 2", "quorum: 9").replace("live_fraction: 1.0", "live_fraction: 0.9"))
    done = govflow("policy", "check", str(bad), str(EXAMPLES[0]))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"policy {bad}: actions[0].approval.quorum (line 27): quorum 9 is larger" in done.stdout
    assert f"policy {bad}: rollout.stages[1].live_fraction (line 40)" in done.stdout
    assert lines[-1].endswith("invoice-matching.yaml: ok")


def test_check_names_an_unreadable_file(tmp_path: Path) -> None:
    done = govflow("policy", "check", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1
    assert done.stdout == f"policy {tmp_path / 'missing.yaml'}: cannot read: No such file or directory\n"


def test_explain_prints_the_decision_and_its_rule() -> None:
    action = {
        "action_id": "p1",
        "system": "finance",
        "resource": "payment",
        "operation": "create",
        "fields": {"invoice_id": "INV-7", "vendor_id": "V003", "amount": 12_500, "currency": "EUR"},
    }
    done = govflow("policy", "explain", str(EXAMPLES[0]), "--action", json.dumps(action), "--requester", "gus")
    assert done.returncode == 0, done.stderr
    assert "decision needs_approval" in done.stdout
    assert "rule large-payment: 2 of [dana, erik, farah], separation of duties on, signature required" in done.stdout

    delete = {**action, "operation": "delete"}
    done = govflow("policy", "explain", str(EXAMPLES[0]), "--action", json.dumps(delete))
    assert "decision deny" in done.stdout
    assert "rule     scope" in done.stdout


def test_explain_refuses_a_malformed_action() -> None:
    done = govflow("policy", "explain", str(EXAMPLES[0]), "--action", '{"system": "finance"}')
    assert done.returncode == 1
    assert "--action is not a valid action: action_id: Field required" in done.stderr


GAPPY = (
    BASE.replace("      quorum: 2\n", "      quorum: 2\n      separation_of_duties: false\n")
    .replace("stop_rules:\n  - {when: pass-rate, action: pause}\n", "")
    .replace("{name: shadow, live_fraction: 0.0, min_runs: 10}", "{name: canary, live_fraction: 0.1, min_runs: 10}")
    .replace("exceptions:\n  roles: [lead]\n  expires_after: 1d\n", "")
    .replace("  redact_fields: [email]\n", "")
    .replace("    operations: [read, update]\n", "    operations: [read, update, delete]\n")
    .replace(
        "      expires_after: 4h\n  - name: notes",
        "      expires_after: 4h\n      signature_required: true\n  - name: notes",
    )
)


def test_a_policy_with_gaps_gets_each_one_named() -> None:
    lines = {line.question: line for line in audit(parse_policy(GAPPY))}
    expect = {
        "Does every write the grants allow have an action rule?": (
            "gap",
            "crm.contact.delete (grant contacts) has no rule",
        ),
        "Is separation of duties on where the risk calls for it?": (
            "blocking",
            "high-risk rule status-change lets the requester approve",
        ),
        "Are there stop rules that pause or roll back, on which metrics, with what minimum sample?": (
            "blocking",
            "no stop rules",
        ),
        "Is there a rollout plan that starts in shadow?": (
            "blocking",
            "the first stage 'canary' is 10% live",
        ),
        "Is there an exception route for incomplete or contradictory input?": (
            "blocking",
            "no exception route",
        ),
        "Are evidence retention and redaction set?": ("gap", "no redacted fields"),
        "Do the reviewers who must sign have keys?": (
            "blocking",
            "alice must sign for status-change but has no public key; bob must sign",
        ),
    }
    for question, (status, detail) in expect.items():
        assert lines[question].status == status, (question, lines[question])
        assert detail in lines[question].detail, (question, lines[question])
    assert lines["Is there a named owner and a system of record?"].status == "ok"


def test_audit_exits_1_on_a_blocking_gap(tmp_path: Path) -> None:
    gappy = tmp_path / "gappy.yaml"
    gappy.write_text(GAPPY)
    done = govflow("policy", "audit", str(gappy))
    assert done.returncode == 1
    assert "[BLOCKING] Is there a rollout plan that starts in shadow?" in done.stdout
    assert done.stdout.rstrip().endswith("Blocking gaps: fix them before launch.")


def test_the_examples_are_what_the_issue_asked_for() -> None:
    triage = load_policy(EXAMPLES[1])
    (churn,) = [r for r in triage.actions if r.name == "flag-churn-risk"]
    assert churn.approval is not None
    assert (churn.approval.quorum, churn.approval.separation_of_duties) == (2, True)
    invoices = load_policy(EXAMPLES[0])
    pay, large = (next(r for r in invoices.actions if r.name == n) for n in ("payment", "large-payment"))
    assert pay.approval is not None
    assert large.approval is not None
    assert (pay.approval.quorum, large.approval.quorum) == (1, 2)
    assert large.approval.signature_required
    assert large.approval.separation_of_duties
    assert pay.approval.expires_after.total_seconds() == 4 * 3600
    assert pay.approval.on_expiry == "reject"


def test_explain_says_who_the_data_and_the_limits_keep_out() -> None:
    action = (
        '{"action_id": "schedule-payment", "system": "finance", "resource": "payment", "operation": "create", '
        '"record_id": "PAY-1", "fields": {"amount": "120000", "currency": "EUR", "vendor_id": "V001"}}'
    )
    reads = '{"purchase_order": [{"id": "PO-1", "requested_by": "dana"}]}'
    invoices = next(e for e in EXAMPLES if e.stem == "invoice-matching")
    done = govflow("policy", "explain", str(invoices), "--requester", "gus", "--action", action, "--reads", reads)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "gate     rule large-payment: 2 of [farah, hana]",
        "not      dana: purchase_order.requested_by is dana",
        "not      dana: may approve up to 50,000.00 EUR; this is 120,000.00 EUR",
        "not      erik: may approve up to 50,000.00 EUR; this is 120,000.00 EUR",
        "it goes to controller",
    ):
        assert line in done.stdout, (line, done.stdout)
    bad = govflow("policy", "explain", str(invoices), "--action", action, "--reads", "[1]")
    assert bad.returncode != 0
    assert "--reads is not JSON of resource -> list of records" in bad.stderr


def test_audit_blocks_a_rollout_that_can_be_paused_but_never_resumed(tmp_path: Path) -> None:
    doc = yaml.safe_load(next(e for e in EXAMPLES if e.stem == "support-triage").read_text())
    for stage in doc["rollout"]["stages"]:
        stage.pop("promoters", None)
        stage["gate"] = "auto"
    nobody = tmp_path / "nobody-resumes.yaml"
    nobody.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = govflow("policy", "audit", str(nobody))
    assert done.returncode == 1, done.stdout
    assert "[BLOCKING] Can a paused rollout be resumed?" in done.stdout
    assert "no stage names promoters, so a pause can never be lifted" in done.stdout
