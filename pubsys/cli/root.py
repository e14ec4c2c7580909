"""Flags of `pubsys root` and its subcommands (registered by the repo family, `repo.py`).

`root` is one command of the one parser: its subcommands are nested subparsers, so global
flags, help and exit codes work as for every other command. The handler turns the parsed
flags into the subcommand's options (`pubsys.repo.root`) and runs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import InfraConfig
from ..errors import UsageError
from ..repo.roles import TOP_ROLES
from ..timespec import parse_point_in_time, utcnow
from .common import command

if TYPE_CHECKING:
    from ..repo.root import RootOptions

DEFAULT_LIFETIME = "in 365 days"
KEY_FORMS = "PEM file (public or private), kms:KEY_ID or ssm:/PARAMETER"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "root", help="manage a root.json (for the owner of the root keys)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Edit and sign one root.json, for the operator who holds the root keys. "
        "KEY is a PEM file, kms:KEY_ID (id, ARN or alias/NAME) or ssm:/PARAMETER.\n\n"
        "Rotation: bump-version (keeps N.root.json), add-key/remove-key/expire, then "
        "'sign -k NEW' and 'sign -k OLD' (separately if need be); 'pubsys repo' publishes "
        "the new version and clients walk to it.",
        epilog="Run 'pubsys root SUBCOMMAND --help' for the arguments of one subcommand.")
    actions = p.add_subparsers(dest="root_action", metavar="SUBCOMMAND", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        c = command(actions, name, help)
        c.add_argument("path", type=Path, metavar="PATH", help="the root.json to edit")
        return c

    c = action("init", "create a new version-1 root.json with no keys")
    c.add_argument("--expires", default=DEFAULT_LIFETIME, metavar="WHEN",
                   help="RFC3339 or 'in N days/weeks' (default: %(default)s)")
    c = action("add-key", "trust a key for one or more roles; prints its keyid")
    c.add_argument("key", metavar="KEY", help=KEY_FORMS)
    c.add_argument("-r", "--role", dest="roles", action="append", required=True,
                   choices=TOP_ROLES, help="role to trust it for (repeatable)")
    c = action("remove-key", "stop trusting a key for some or all roles")
    c.add_argument("keyid", metavar="KEYID", help="keyid, or a unique prefix of 8+ digits")
    c.add_argument("-r", "--role", dest="roles", action="append", choices=TOP_ROLES,
                   help="remove it only from this role (repeatable; default: every role)")
    c = action("set-threshold", "set how many signatures a role needs")
    c.add_argument("role", choices=TOP_ROLES, metavar="ROLE",
                   help="one of " + ", ".join(TOP_ROLES))
    c.add_argument("threshold", type=int, metavar="N", help="signatures needed (>= 1)")
    c = action("expire", "set when this root expires")
    c.add_argument("when", metavar="WHEN", help="RFC3339 or 'in N days/weeks'")
    action("bump-version", "start the next root version (keeps the signed one as N.root.json)")
    c = action("sign", "add signatures from root keys of this version or the previous one")
    c.add_argument("-k", "--key", dest="keys", action="append", required=True, metavar="KEY",
                   help="PEM private key file, kms:KEY_ID or ssm:/PARAMETER (repeatable)")
    c.add_argument("--previous", "--cross-sign", dest="previous", type=Path, metavar="PATH",
                   help="the previous root version (default: N-1.root.json beside PATH)")


def _when(text: str, name: str) -> datetime:
    """Times are checked here rather than by argparse: the message names the argument as
    `pubsys root` always has, and it is a usage error (exit 2) all the same."""
    try:
        return parse_point_in_time(text, utcnow())
    except ValueError as e:
        raise UsageError(f"{name}: {e}") from None


def root_options(args: argparse.Namespace) -> RootOptions:
    from ..keys import parse_key_ref
    from ..repo import root

    path: Path = args.path
    builders: dict[str, Callable[[], RootOptions]] = {
        "init": lambda: root.InitRoot(path, _when(args.expires, "--expires")),
        "add-key": lambda: root.AddKey(path, parse_key_ref(args.key), tuple(args.roles)),
        "remove-key": lambda: root.RemoveKey(
            path, args.keyid, tuple(args.roles) if args.roles else None),
        "set-threshold": lambda: root.SetThreshold(path, args.role, args.threshold),
        "expire": lambda: root.ExpireRoot(path, _when(args.when, "WHEN")),
        "bump-version": lambda: root.BumpVersion(path),
        "sign": lambda: root.SignRoot(
            path, tuple(parse_key_ref(k) for k in args.keys), args.previous),
    }
    return builders[args.root_action]()


def run_root(args: argparse.Namespace, infra: InfraConfig) -> int:
    from ..repo.root import run_root

    return run_root(root_options(args), infra)


HANDLERS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {"root": run_root}
