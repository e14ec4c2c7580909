"""argparse wiring only: parse, load the config, call one command, map errors to exit codes.

Exit codes a pipeline can rely on:
  0  success
  1  the operation failed (AWS, signing, I/O, ...); nothing half-published
  2  bad input: flags, Infra.toml, policy files (argparse uses 2 as well)
  3  a validate-* / check-* command ran and found problems
130  interrupted
Machine-readable output goes to stdout; logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..config import InfraConfig, load_infra_config
from ..errors import ConfigError, PolicyError, PubsysError, UsageError, ValidationFailed
from . import ami as ami_cli
from . import infra as infra_cli
from . import release as release_cli
from . import repo as repo_cli
from . import ssm as ssm_cli
from . import variant as variant_cli
from .common import Formatter

log = logging.getLogger("pubsys")

TRACE = 5
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
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
            "3 validation found problems, 130 interrupted."
        ),
        epilog="Run 'pubsys COMMAND --help' for the flags of one command. "
        "See PUBLISHING.md for the operator's guide.",
    )
    p.add_argument("--version", action="version", version=f"pubsys {__version__}")
    p.add_argument("--infra-config-path", default="Infra.toml", metavar="PATH",
                   help="Infra.toml to read; an Infra.lock beside it wins; "
                   "a missing file means built-in defaults")
    p.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper,
                   help="how much to log on stderr; DEBUG also shows tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for family in FAMILIES:
        family.register(sub)
    return p


def setup_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    logging.addLevelName(logging.WARNING, "WARN")
    numeric = TRACE if level == "TRACE" else getattr(logging, "WARNING" if level == "WARN"
                                                     else level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Our own logs at the chosen level; libraries (boto, urllib3, tuf) only when tracing.
    root.setLevel(numeric if level == "TRACE" else max(numeric, logging.WARNING))
    logging.getLogger("pubsys").setLevel(numeric)


def resolve(command: str) -> Callable[[argparse.Namespace, InfraConfig], int]:
    return COMMANDS[command]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    debug = args.log_level in ("DEBUG", "TRACE")
    try:
        infra = load_infra_config(args.infra_config_path)
        rc = resolve(args.command)(args, infra)
        return int(rc or 0)
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
