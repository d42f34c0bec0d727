"""Passkeys (WebAuthn), by the ``webauthn`` library: the relying party is the console's public origin and
its host; user verification is required; each challenge answers one ceremony of one browser, once.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from govflow.console.accounts import AccountError, Accounts, new_secret, sha256

RP_NAME = "govflow reviewer console"


class RelyingParty:
    """The console as a WebAuthn relying party at ``origin`` (its id is the origin's host)."""

    def __init__(self, origin: str, accounts: Accounts) -> None:
        host = urlsplit(origin).hostname
        if not host:
            raise ValueError(f"the console's origin {origin!r} names no host")
        self.origin, self.rp_id, self.accounts = origin, host, accounts

    async def enroll_options(self, token: str) -> tuple[str, dict[str, Any]]:
        """A new ceremony (its cookie value) and the browser's options to create a passkey for the link's reviewer."""
        reviewer = await self.accounts.enrollment(token)
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=RP_NAME, user_name=reviewer, user_id=reviewer.encode(),
            user_display_name=reviewer,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
            ),
        )  # fmt: skip
        ceremony = new_secret()
        await self.accounts.put_challenge(ceremony, "enroll", options.challenge, sha256(token))
        return ceremony, json.loads(options_to_json(options))

    async def enroll(self, token: str, ceremony: str, credential: dict[str, Any]) -> tuple[str, str]:
        """Verify the new passkey against the ceremony's challenge and store it; returns the reviewer and the
        passkey's id."""
        challenge, enrollment = await self.accounts.take_challenge(ceremony, "enroll")
        if enrollment != sha256(token):
            raise AccountError("this passkey was made for another enrollment link: start again")
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, require_user_verification=True,
            )  # fmt: skip
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            raise AccountError(f"the passkey could not be verified: {exc}") from None
        credential_id = bytes_to_base64url(verified.credential_id)
        reviewer = await self.accounts.enroll(
            token, credential_id, verified.credential_public_key, verified.sign_count, self.origin
        )
        return reviewer, credential_id

    async def signin_options(self) -> tuple[str, dict[str, Any]]:
        """A new ceremony and the browser's options to sign in with any passkey enrolled here."""
        options = generate_authentication_options(
            rp_id=self.rp_id, user_verification=UserVerificationRequirement.REQUIRED
        )
        ceremony = new_secret()
        await self.accounts.put_challenge(ceremony, "signin", options.challenge, None)
        return ceremony, json.loads(options_to_json(options))

    async def signin(self, ceremony: str, credential: dict[str, Any]) -> tuple[str, str]:
        """Verify the assertion; returns the reviewer and the passkey's id."""
        challenge, _ = await self.accounts.take_challenge(ceremony, "signin")
        credential_id = credential.get("id")
        if not isinstance(credential_id, str):
            raise AccountError("the browser sent no passkey id")
        stored = await self.accounts.credential(credential_id)
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, credential_public_key=stored.public_key,
                credential_current_sign_count=stored.sign_count, require_user_verification=True,
            )  # fmt: skip
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
            raise AccountError(f"the passkey could not be verified: {exc}") from None
        await self.accounts.signed_in(credential_id, verified.new_sign_count)
        return stored.reviewer, credential_id
