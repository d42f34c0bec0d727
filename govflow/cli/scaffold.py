"""`govflow init PACKAGE`: start a task of your own, in a package of your own."""

from __future__ import annotations

import argparse
from pathlib import Path

from govflow.cli.answers import Subparsers


def cmd_init(args: argparse.Namespace) -> int:
    from govflow.init import create

    written = create(args.package, Path(args.dir))
    root = Path(args.dir) / args.package
    print(f"wrote {root}/: " + ", ".join(str(p.relative_to(root)) for p in written))
    print(f"next: cd {root} and follow its README.md (install, test, sample data, check, serve, run)")
    return 0


def register(sub: Subparsers) -> None:
    init = sub.add_parser("init", help="start a task of your own: a package with a task, its policy, a worker app, "
                          "sample data and a test")  # fmt: skip
    init.add_argument("package", metavar="PACKAGE", help="the package's name, e.g. acme_leads (its task: acme-leads)")
    init.add_argument("--dir", default=".", help="the folder to make it in (default: here)")
    init.set_defaults(func=cmd_init, needs_settings=False)
