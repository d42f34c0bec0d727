"""The reviewer console: reviewers sign in with a passkey and decide what waits for them, in a browser
(`govflow console`; ``create_app`` is the ASGI app)."""

from __future__ import annotations

from govflow.console.app import create_app

__all__ = ["create_app"]
