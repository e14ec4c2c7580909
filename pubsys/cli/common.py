"""Pieces every command family's parsers share: the help formatter and common flags."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

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




# --- argparse types shared by every family ---------------------------------------------------
# argparse shows an ArgumentTypeError's message after the flag's name and exits 2, so these
# name the flag without knowing it.

T = TypeVar("T")
# Names that become path components, S3 keys and SSM names: no '/', no '.' or '..', nothing
# a shell or URL would read differently.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def argtype(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError with a message: argparse shows
    an ArgumentTypeError's message after the flag's name (a ValueError's it would hide)."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


@argtype
def safe_name(text: str) -> str:
    """A variant, version, build or prefix: one safe path component (letters, digits, '.',
    '_', '+', '-'; starting with a letter or digit), since it ends up in paths, S3 keys and
    SSM parameter names."""
    if not _SAFE_NAME.fullmatch(text) or text in (".", ".."):  # fullmatch: no final "\n"
        raise ValueError(f"{text!r} is not a safe name: use letters, digits, '.', '_', '+' "
                         "and '-', starting with a letter or digit (at most 128)")
    return text


@argtype
def nonempty(text: str) -> str:
    """A value that must not be blank."""
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


@argtype
def region_list(text: str) -> tuple[str, ...]:
    """'us-west-2,eu-west-1' -> the regions, in order, once each (the one region parser)."""
    from ..aws.ami_json import parse_regions

    return parse_regions(text)


@argtype
def comma_list(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c'): blanks skipped, order kept (pair with ExtendList)."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise ValueError("no values given")
    return values


def _arch_as(style: str, text: str) -> str:
    from .. import policy
    from ..errors import PolicyError

    try:
        return policy.ec2_arch(text) if style == "ec2" else policy.repo_arch(text)
    except PolicyError as e:
        raise ValueError(str(e)) from None


@argtype
def ec2_arch(text: str) -> str:
    """x86_64/amd64 -> x86_64, aarch64/arm64 -> arm64 (the names EC2 and SSM use)."""
    return _arch_as("ec2", text)


@argtype
def repo_arch(text: str) -> str:
    """x86_64/amd64 -> x86_64, aarch64/arm64 -> aarch64 (the names repos use)."""
    return _arch_as("repo", text)


@argtype
def positive_duration(text: str) -> timedelta:
    """'2 hours', '90 minutes': longer than zero."""
    from ..timespec import parse_offset

    offset = parse_offset(text)
    if offset <= timedelta(0):
        raise ValueError("must be longer than zero")
    return offset


@argtype
def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return seconds


class ExtendList(argparse.Action):
    """A list flag that may be repeated: `--regions a,b --regions c` means a, b, c, as
    Bottlerocket's pubsys reads it (argparse alone would keep only the last). Use with a
    `type=` that returns a tuple; duplicates are dropped, order kept."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        before = getattr(namespace, self.dest, None) or ()
        setattr(namespace, self.dest, tuple(dict.fromkeys((*before, *values))))


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


def validation_output_flags(p: argparse.ArgumentParser, statuses: tuple[str, ...],
                            what: str) -> None:
    """The output flags every validate-* command shares with Bottlerocket's pubsys: a results
    file, a repeatable status filter for it, per-region counts as JSON, and --report-only
    (exit 0 whatever was found). `what` names the checked thing, e.g. 'image'."""

    @argtype
    def status_list(text: str) -> tuple[str, ...]:
        from ..report import parse_statuses

        return tuple(sorted(parse_statuses(text, statuses)))

    p.add_argument("--write-results-path", help="write the results as JSON here")
    p.add_argument("--write-results-filter", type=status_list, action=ExtendList,
                   help="statuses to keep in the results file, repeatable or comma-separated, "
                   f"any case: {', '.join(statuses)}")
    counts = ", ".join(s.lower() for s in statuses)
    p.add_argument("--json", action="store_true",
                   help=f"print the counts per region as JSON ({{region: {{{counts}}}}}) "
                   "instead of the table")
    p.add_argument("--report-only", action="store_true",
                   help="exit 0 whenever the validation ran, whatever it found, as "
                   f"Bottlerocket's pubsys does (default: exit 3 unless every {what} is "
                   "Correct)")
