"""Pieces every command family's parsers share: the help formatter and common flags."""

from __future__ import annotations

import argparse
from typing import Any


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


