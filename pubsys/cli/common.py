"""Pieces every command family's parsers share: the help formatter and common flags."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from ..timespec import parse_point_in_time, utcnow
from ..version import Version


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default only when it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in help:
            help += " (default: %(default)s)"
        return help


def command(sub: Any, name: str, help: str,
            description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description or help,
                          formatter_class=Formatter)


def repo_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default="default", help="which [repo.NAME] of Infra.toml to use")


def variant_arch(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--variant", required=required, help="image variant, e.g. aws-k8s-1.31")
    p.add_argument("--arch", required=required,
                   help="architecture: x86_64/amd64 or aarch64/arm64")




# --- argparse `type=` functions: the flag's syntax, checked where the flag is known ---------
# argparse names the flag in the error and exits with 2; domain code gets typed values.


def point_in_time(text: str) -> datetime:
    """RFC3339, or 'in N hours/days/weeks' from now."""
    try:
        return parse_point_in_time(text, utcnow())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def semver(text: str) -> Version:
    """A semantic version; a leading 'v' is allowed."""
    try:
        return Version.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def variant_name(text: str) -> str:
    """A variant name: it becomes a directory and a URL path segment."""
    name = text.strip()
    if not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-empty name without '/'")
    return name
