"""Where a policy announces pending approvals: HTTPS webhooks, their signing secrets by reference."""

from __future__ import annotations

import urllib.parse
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from govflow.policies.terms import Name, Strict


class SecretRef(Strict):
    """Where a webhook's signing secret is kept: an environment variable or a file, never the policy."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("name the secret by exactly one of env (a variable) or file (a path)")
        return self


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Notification(Strict):
    """Where pending approvals are announced: an HTTPS webhook, for the gates of some rules or roles.

    One message when a run starts waiting, one when a gate escalates, one when the wait ends (approved,
    rejected, expired); each signed with HMAC-SHA256 over the timestamp and the body.
    """

    name: Name
    url: str = Field(description="https://..., or http:// only to localhost (a receiver on this machine).")
    format: Literal["json", "slack"] = Field(
        default="json", description="json: govflow's message; slack: a Slack-compatible incoming-webhook body."
    )
    secret: SecretRef
    rules: tuple[Name, ...] = Field(default=(), description="Announce the gates of these action rules.")
    roles: tuple[Name, ...] = Field(default=(), description="Announce the gates these roles may decide.")

    @field_validator("secret", mode="before")
    @classmethod
    def _by_reference(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("a webhook secret goes by reference, {env: NAME} or {file: PATH}, never in the policy")
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        host = (parts.hostname or "").lower()
        if not host:
            raise ValueError(f"{value!r} is not a URL with a host")
        if parts.scheme == "https" or (parts.scheme == "http" and host in _LOCAL_HOSTS):
            return value
        raise ValueError(f"webhook url {value!r} must be https (plain http only to localhost)")

    @model_validator(mode="after")
    def _announces_something(self) -> Notification:
        if not self.rules and not self.roles:
            raise ValueError(f"notification {self.name!r} names no rules and no roles to announce")
        return self

    def announces(self, rule: str, roles: tuple[str, ...]) -> bool:
        return rule in self.rules or any(r in self.roles for r in roles)
