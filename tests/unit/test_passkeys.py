"""A passkey-signed act, checked as the run checks it (policies/passkeys.py): assertions from a software
authenticator (ES256 and EdDSA), each way of getting one wrong refused with its reason."""

from __future__ import annotations

import base64

import pytest

from govflow.policies import signing_message
from govflow.policies.passkeys import PasskeyProof, check_assertion
from tests.soft_passkey import SoftPasskey

RUN, DIGEST = "run-1", "a" * 64
APPROVE = signing_message(RUN, DIGEST, "approve")


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_a_passkey_signing_the_act_holds(algorithm: str) -> None:
    key = SoftPasskey("alice", algorithm=algorithm, counter=7)
    checked = check_assertion(key.sign([APPROVE]), key.credential(), APPROVE, "alice", require_uv=True)
    assert (checked.problem, checked.counter) == (None, 8)


def test_one_touch_signs_many_acts_and_each_checks_alone() -> None:
    key = SoftPasskey("alice")
    acts = [signing_message(f"run-{i}", DIGEST, "approve") for i in range(20)]
    proof = key.sign(acts)
    for act in acts:
        assert check_assertion(proof, key.credential(), act, "alice", require_uv=True).problem is None
    other = signing_message("run-99", DIGEST, "approve")
    problem = check_assertion(proof, key.credential(), other, "alice", require_uv=True).problem
    assert problem == "the passkey signed other acts than this one (another action, run or verdict)"


def _tampered(proof: PasskeyProof, field: str) -> PasskeyProof:
    response = dict(proof.assertion["response"])
    raw = bytearray(base64.urlsafe_b64decode(response[field] + "=" * (-len(response[field]) % 4)))
    raw[-1] ^= 1
    response[field] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return proof.model_copy(update={"assertion": {**proof.assertion, "response": response}})


def test_every_way_of_getting_it_wrong_is_refused_with_its_reason() -> None:
    key = SoftPasskey("alice")
    other = SoftPasskey("alice")
    good = key.sign([APPROVE])
    cases = {
        "another verdict": (good, key.credential(), signing_message(RUN, DIGEST, "reject"), "signed other acts"),
        "another action": (good, key.credential(), signing_message(RUN, "b" * 64, "approve"), "signed other acts"),
        "another run": (good, key.credential(), signing_message("run-2", DIGEST, "approve"), "signed other acts"),
        "another origin": (key.sign([APPROVE], origin="http://localhost:9999"), key.credential(), APPROVE,
                           "Unexpected client data origin"),
        "another relying party": (key.sign([APPROVE], rp_id="evil.example"), key.credential(), APPROVE,
                                  "Unexpected RP ID hash"),
        "no user verification": (key.sign([APPROVE], verified=False), key.credential(), APPROVE,
                                 "User verification is required"),
        "a forged signature": (_tampered(good, "signature"), key.credential(), APPROVE,
                               "Could not verify authentication signature"),
        "an edited client data": (_tampered(good, "clientDataJSON"), key.credential(), APPROVE, "does not"),
        "another passkey's key": (good, key.credential(public_key=other.public_key), APPROVE,
                                  "Could not verify authentication signature"),
        "someone else's passkey": (good, key.credential(reviewer="bob"), APPROVE, "the passkey is bob's, not alice's"),
        "a revoked passkey": (good, key.credential(revoked="revoked by omar (left)"), APPROVE, "revoked by omar"),
        "no console origin": (good, key.credential(origins=()), APPROVE, "no reviewer console origin"),
    }  # fmt: skip
    for name, (proof, credential, message, says) in cases.items():
        problem = check_assertion(proof, credential, message, "alice", require_uv=True).problem
        assert problem is not None, name
        assert says in problem, (name, problem)


def test_user_verification_can_be_preferred_by_the_policy() -> None:
    key = SoftPasskey("alice")
    unverified = key.sign([APPROVE], verified=False)
    assert check_assertion(unverified, key.credential(), APPROVE, "alice", require_uv=False).problem is None


def test_a_proof_that_does_not_read_is_refused_at_the_door() -> None:
    key = SoftPasskey("alice")
    good = key.sign([APPROVE])
    with pytest.raises(ValueError, match="64-hex sha256"):
        PasskeyProof(assertion=good.assertion, nonce=good.nonce, acts=("not-hex",))
    with pytest.raises(ValueError, match="at most 8192"):
        PasskeyProof(assertion={"id": "x" * 9000}, nonce=good.nonce, acts=good.acts)
    broken = good.model_copy(update={"assertion": {"id": key.credential_id}})
    problem = check_assertion(broken, key.credential(), APPROVE, "alice", require_uv=True).problem
    assert problem is not None
    assert "does not read" in problem
