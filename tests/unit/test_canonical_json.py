"""The fast path of canonical_json writes exactly what rfc8785 writes, on any JSON value."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from govflow.policies.digest import _plain, canonical_json

floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 0.1, 1e-4, 9.999e-5, 1e-7, 1e16, 1e15 + 0.5, 123456.789, 1e21, 5e-324]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), floats,
    st.text(), st.text(alphabet=st.characters(max_codepoint=0x7F)),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
        st.dictionaries(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8), inner, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)  # 3000 took 8 s of a suite kept near 6 min
@given(values)
def test_the_fast_path_matches_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_edge_values_match() -> None:
    for value in [{"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4}, [1.0, -0.0, 1e-5, 1e16, 0.5], "\x00\x1f\x7f\u2028"]:
        assert canonical_json(value) == rfc8785.dumps(value)


def test_typical_evidence_takes_the_fast_path() -> None:
    payload = {"metric": "confidence", "score": 0.92, "passed": True, "n": 3, "who": ["alice", "bob"],
               "text": "Thanks for writing — we're on it.\n", "none": None}  # fmt: skip
    assert _plain(payload)
    assert canonical_json(payload) == rfc8785.dumps(payload)
    assert not _plain({"score": 1.0})  # integral floats print differently: rfc8785 writes them
