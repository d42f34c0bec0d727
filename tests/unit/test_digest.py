from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from govflow.policies import Action, canonical_json, digest, parse_policy, policy_digest
from tests.unit.policy_docs import BASE


def test_an_action_digest_ignores_key_order() -> None:
    a = Action.model_validate_json(
        '{"action_id":"a1","system":"crm","resource":"contact","operation":"update",'
        '"fields":{"status":"churn-risk","note":"x"}}'
    )
    b = Action.model_validate_json(
        '{ "fields": {"note": "x", "status": "churn-risk"},\n  "operation": "update",'
        ' "resource": "contact", "system": "crm", "action_id": "a1" }'
    )
    assert a.digest() == b.digest()
    assert a.digest() != a.model_copy(update={"fields": {"status": "churn-risk", "note": "y"}}).digest()


def test_known_digest_of_canonical_json() -> None:
    assert canonical_json({"b": 1.0, "a": [2, "é"]}) == '{"a":[2,"é"],"b":1}'.encode()
    # sha256 of the bytes above
    assert digest({"b": 1.0, "a": [2, "é"]}) == digest({"a": [2, "é"], "b": 1})


def test_a_policy_digest_is_stable_across_layout() -> None:
    reflowed = BASE.replace("  team: ops\n  contact: ops@example.com\n", "  contact: ops@example.com\n  team: ops\n")
    with_comments = "# a comment\n" + BASE.replace("risk: high", "risk:   high   # why")
    assert policy_digest(parse_policy(BASE)) == policy_digest(parse_policy(reflowed))
    assert policy_digest(parse_policy(BASE)) == policy_digest(parse_policy(with_comments))
    changed = BASE.replace("quorum: 2", "quorum: 1")
    assert policy_digest(parse_policy(BASE)) != policy_digest(parse_policy(changed))


def test_a_value_without_canonical_json_is_refused_clearly() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"fields\n.*exceeds safe integer domain.*send such values as strings"):
        Action(action_id="a", system="s", resource="r", operation="update", fields={"n": 2**60})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_digest_is_independent_of_insertion_order(doc: dict[str, object]) -> None:
    reversed_doc = dict(reversed(list(doc.items())))
    assert digest(doc) == digest(reversed_doc)


def test_a_policy_digest_does_not_change_when_govflow_learns_a_field_the_policy_does_not_use() -> None:
    # The digest of this document as govflow computed it before grants could say `void` (498a587): runs
    # record it and `policy audit --task` compares it, so an upgrade must not move it.
    assert policy_digest(parse_policy(BASE)) == "548a2e2f8ca729c5e8dc786021ee9bf09db2dd8692ae4e2fa5b94def059b5e1e"
