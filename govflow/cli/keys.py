"""`govflow keys new`: Ed25519 keys for signing votes, controls and checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from govflow.cli.answers import Subparsers


def cmd_keys_new(args: argparse.Namespace) -> int:
    from govflow.signing import new_key

    public = new_key(Path(args.path))
    print(f"wrote {args.path}; public key (for the policy's reviewers/operators, or --public-key):")
    print(public)
    return 0


def register(sub: Subparsers) -> None:
    keys = sub.add_parser("keys", help="Ed25519 keys for signing votes, controls and checkpoints")
    keys_sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = keys_sub.add_parser("new", help="write a new private key file (0600) and print its public key")
    new.add_argument("path", metavar="FILE")
    new.set_defaults(func=cmd_keys_new, needs_settings=False)
