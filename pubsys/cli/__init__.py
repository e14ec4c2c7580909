"""argparse wiring only: parse, load the config, call one command, map errors to exit codes.

Exit codes a pipeline can rely on:
  0  success
  1  the operation failed (AWS, signing, I/O, ...); nothing half-published
  2  bad input: flags, Infra.toml, policy files (argparse uses 2 as well)
  3  a validate-* / check-* command ran and found problems
  4  `release plan --detailed-exitcode`: changes are pending
130  interrupted
Machine-readable output goes to stdout; logs and progress go to stderr.

`--log-level` is global, as in Bottlerocket's pubsys: any letter case, before or after the
command (and after a `root` subcommand), `OFF` logging nothing at all, errors included (the
exit code still tells). The `pubsys-setup` executable (`setup_main.py`) shares all of this.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..config import InfraConfig, load_infra_config
from ..errors import ConfigError, PolicyError, PubsysError, UsageError, ValidationFailed
from ..redact import RedactingFilter
from . import ami as ami_cli
from . import infra as infra_cli
from . import release as release_cli
from . import repo as repo_cli
from . import ssm as ssm_cli
from . import variant as variant_cli
from .common import Formatter

log = logging.getLogger("pubsys")

TRACE = 5
LOG_LEVELS = ("OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")
OFF = logging.CRITICAL + 10  # above every record, so nothing is logged
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INVALID, EXIT_INTERRUPTED = 1, 2, 3, 130

# Each command family registers its parsers and handlers; handlers import their domain
# module only when run, so `--help` stays fast.
FAMILIES = (repo_cli, ami_cli, ssm_cli, variant_cli, infra_cli, release_cli)
COMMANDS: dict[str, Callable[[argparse.Namespace, InfraConfig], int]] = {
    name: handler for family in FAMILIES for name, handler in family.HANDLERS.items()
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pubsys",
        formatter_class=Formatter,
        description=(
            "Publish OS images: build and sign TUF update repositories, turn disk images into "
            "AMIs in every region, and publish SSM parameters that name them.\n\n"
            "Exit codes: 0 ok, 1 failed, 2 bad input (flags, Infra.toml, policies), "
            "3 validation found problems, 4 changes pending (release plan --detailed-exitcode), "
            "130 interrupted."
        ),
        epilog="Run 'pubsys COMMAND --help' for the flags of one command. "
        "See PUBLISHING.md for the operator's guide.",
    )
    p.add_argument("--version", action="version", version=f"pubsys {__version__}")
    p.add_argument("--infra-config-path", default="Infra.toml", metavar="PATH",
                   help="Infra.toml to read; an Infra.lock beside it wins; "
                   "a missing file means built-in defaults")
    add_log_level(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for family in FAMILIES:
        family.register(sub)
    log_level_after_commands(p)
    return p


def add_log_level(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    """`--log-level`: before the command it sets the default (INFO); after a command it
    overrides it, and is absent from the namespace unless given (argparse.SUPPRESS)."""
    p.add_argument("--log-level", default=argparse.SUPPRESS if after_command else "INFO",
                   type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                   help="how much to log on stderr, any case: " + ", ".join(LOG_LEVELS)
                   + " (OFF: nothing, errors included); DEBUG also shows tracebacks"
                   + ("; the same flag as before the command" if after_command else ""))


def log_level_after_commands(p: argparse.ArgumentParser) -> None:
    """Let every command and subcommand take `--log-level` too (a global flag, as clap's)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                add_log_level(sub, after_command=True)
                log_level_after_commands(sub)


def setup_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    logging.addLevelName(logging.WARNING, "WARN")
    numeric = {"OFF": OFF, "WARN": logging.WARNING, "TRACE": TRACE}.get(level) or getattr(
        logging, level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s",
                                           "%H:%M:%S"))
    # A backstop: whatever logs a URL with credentials in it (user:password@, a presigned
    # query), an error message included, reaches stderr with them masked.
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Our own logs at the chosen level; libraries (boto, urllib3, tuf) only when tracing.
    root.setLevel(numeric if level == "TRACE" else max(numeric, logging.WARNING))
    logging.getLogger("pubsys").setLevel(numeric)
    # Python warnings (a library's DeprecationWarning, say) follow the level too.
    logging.captureWarnings(level == "OFF")


def resolve(command: str) -> Callable[[argparse.Namespace, InfraConfig], int]:
    return COMMANDS[command]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return execute(args.log_level, args.infra_config_path,
                   lambda infra: resolve(args.command)(args, infra))


def execute(level: str, infra_config_path: str | Path,
            command: Callable[[InfraConfig], int | None]) -> int:
    """Set up logging, load the config, run `command` and map its errors to exit codes (the
    one place, shared by `pubsys` and `pubsys-setup`)."""
    setup_logging(level)
    debug = level in ("DEBUG", "TRACE")
    try:
        infra = load_infra_config(infra_config_path)
        return int(command(infra) or 0)
    except ValidationFailed as e:
        if str(e):
            log.error("%s", e)
        return EXIT_INVALID
    except (ConfigError, PolicyError, UsageError) as e:
        log.error("%s", e, exc_info=debug)
        return EXIT_BAD_INPUT
    except PubsysError as e:
        log.error("%s", e, exc_info=debug)
        return EXIT_FAILED
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug, or a library error we did not wrap
        log.error("unexpected error: %s: %s (run with --log-level DEBUG for details)",
                  type(e).__name__, e, exc_info=debug)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
