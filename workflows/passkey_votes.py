"""A passkey-signed vote, checked by the run: the reviewer's passkey read through an activity (from their
evidence chain), the assertion checked here (policies/passkeys.py: the act's own challenge, origin,
relying party, presence and verification, signature), the counter claimed forward through an activity,
and the assertion remembered so that sending it again into this run is refused. Workflow code."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities.passkey_activities import CounterClaim, CredentialRequest, PasskeyActivities
    from govflow.policies import Policy, signing_message
    from govflow.policies.passkeys import PasskeyProof, act_leaf, check_assertion
    from govflow.workflows.ledger import RETRY

_ACTIVITY = timedelta(seconds=30)


async def check_passkey(
    policy: Policy, run_id: str, reviewer: str, proof: PasskeyProof, action_digest: str, verdict: str, used: set[str]
) -> tuple[str | None, dict[str, Any]]:
    """Why the passkey's signature of this vote does not hold (None: it holds), and what the evidence keeps
    of it: the proof as sent, the credential as read, the counter, whether user verification was required."""
    require_uv = policy.identity.user_verification == "required"
    record: dict[str, Any] = {"proof": proof.model_dump(mode="json"), "user_verification_required": require_uv}
    message = signing_message(run_id, action_digest, verdict)
    use = f"{proof.fingerprint}:{act_leaf(message)}"  # one touch may sign several acts of a run, each once
    if use in used:
        return "this assertion was used already in this run: a passkey signs an act once", record
    credential = await workflow.execute_activity_method(
        PasskeyActivities.passkey_credential, CredentialRequest(reviewer=reviewer, credential_id=proof.credential_id),
        start_to_close_timeout=_ACTIVITY, retry_policy=RETRY,
    )  # fmt: skip
    record["credential"] = credential.model_dump(mode="json")
    checked = check_assertion(proof, credential, message, reviewer, require_uv)
    record["counter"] = checked.counter
    if checked.problem is not None:
        return checked.problem, record
    if checked.counter > 0:  # an authenticator that keeps a counter: it only moves forward
        claim = await workflow.execute_activity_method(
            PasskeyActivities.passkey_counter,
            CounterClaim(credential_id=proof.credential_id, counter=checked.counter, fingerprint=proof.fingerprint),
            start_to_close_timeout=_ACTIVITY, retry_policy=RETRY,
        )  # fmt: skip
        if not claim.ok:
            return (
                f"the passkey's signature counter went back ({checked.counter}, after {claim.stored}): "
                "a copied authenticator, or an assertion sent again",
                record,
            )
    used.add(use)
    return None, record
