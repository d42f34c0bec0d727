"""The console's half of a passkey-signed act: the browser's options for a WebAuthn assertion whose
challenge is the act itself (its canonical message, or the messages of a bulk decision, with a fresh
nonce), and the proof read back from the form. The console checks nothing of it: the run does."""

from __future__ import annotations

import json
import secrets
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from webauthn import generate_authentication_options, options_to_json
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

from govflow.console.accounts import AccountError, Session
from govflow.console.web import console_of, json_body
from govflow.policies import signing_message
from govflow.policies.passkeys import MAX_ACTS, PasskeyProof, act_leaf, challenge


async def _options(request: Request, session: Session, messages: list[bytes]) -> Response:
    console = console_of(request)
    acts, nonce = [act_leaf(m) for m in messages], secrets.token_urlsafe(24)
    credentials = await console.store.pool.fetch(
        "SELECT credential_id FROM console_credentials WHERE reviewer = $1 AND revoked_at IS NULL", session.reviewer
    )
    options = generate_authentication_options(
        rp_id=console.rp.rp_id, challenge=challenge(acts, nonce),
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(r["credential_id"]))
                           for r in credentials],
        user_verification=UserVerificationRequirement.REQUIRED,
    )  # fmt: skip
    return JSONResponse({"options": json.loads(options_to_json(options)), "nonce": nonce, "acts": acts})


def _verdict(body: dict[str, Any]) -> str:
    verdict = body.get("verdict")
    if verdict not in ("approve", "reject"):
        raise AccountError("choose approve or reject")
    return str(verdict)


async def act_challenge(request: Request) -> Response:
    """Options to sign one act: this action of this run, with the verdict chosen."""
    session = await console_of(request).session(request)
    assert session is not None, "the Guard lets no POST through without a session"
    body = await json_body(request)
    digest = body.get("action_digest")
    if not isinstance(digest, str) or len(digest) != 64:
        raise AccountError("the form names no action digest: reload the page")
    message = signing_message(request.path_params["run_id"], digest, _verdict(body))
    return await _options(request, session, [message])


async def bulk_challenge(request: Request) -> Response:
    """Options to sign the selected actions with one touch: the challenge commits to each act's message."""
    session = await console_of(request).session(request)
    assert session is not None, "the Guard lets no POST through without a session"
    body = await json_body(request)
    verdict, picks = _verdict(body), body.get("picks")
    if not isinstance(picks, list) or not 0 < len(picks) <= MAX_ACTS:
        raise AccountError(f"select between 1 and {MAX_ACTS} actions")
    messages = []
    for pick in picks:
        if not (isinstance(pick, list) and len(pick) == 3 and all(isinstance(x, str) for x in pick)):
            raise AccountError("a selected action is not one the inbox named: reload the page")
        messages.append(signing_message(pick[0], pick[2], verdict))
    return await _options(request, session, messages)


def proof_of(form: FormData) -> PasskeyProof | str | None:
    """The passkey proof the page put in the form (None: the act is not passkey-signed), or what is wrong."""
    sent = form.get("passkey")
    if not sent:
        return None
    if not isinstance(sent, str):
        return "the passkey's answer does not read"
    try:
        return PasskeyProof.model_validate_json(sent)
    except ValidationError as exc:
        return f"the passkey's answer does not read: {exc.errors()[0]['msg']}"
