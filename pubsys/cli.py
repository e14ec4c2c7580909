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
import importlib
import logging
import sys
from typing import Callable, Sequence

from . import __version__
from .config import load_infra_config
from .errors import ConfigError, PolicyError, PubsysError, UsageError, ValidationFailed

log = logging.getLogger("pubsys")

TRACE = 5
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INVALID, EXIT_INTERRUPTED = 1, 2, 3, 130

# Subcommand -> "module:function"; imported only when run so `--help` stays fast.
COMMANDS: dict[str, str] = {
    "setup": "pubsys.repo.commands:run_setup",
    "repo": "pubsys.repo.commands:run_repo",
    "validate-repo": "pubsys.repo.lifecycle:run_validate_repo",
    "check-repo-expirations": "pubsys.repo.lifecycle:run_check_repo_expirations",
    "refresh-repo": "pubsys.repo.lifecycle:run_refresh_repo",
    "publish-repo": "pubsys.repo.publish:run_publish_repo",
    "root": "pubsys.repo.root:run_root",
    "ami": "pubsys.aws.ami:run_ami",
    "publish-ami": "pubsys.aws.permissions:run_publish_ami",
    "validate-ami": "pubsys.aws.validate:run_validate_ami",
    "ssm": "pubsys.aws.ssm:run_ssm",
    "promote-ssm": "pubsys.aws.ssm:run_promote_ssm",
    "validate-ssm": "pubsys.aws.ssm:run_validate_ssm",
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default only when it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in help:
            help += " (default: %(default)s)"
        return help


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pubsys",
        formatter_class=_Formatter,
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
    _add_repo_commands(sub)
    _add_repo_lifecycle_commands(sub)
    _add_ami_commands(sub)
    _add_ssm_commands(sub)
    return p


def _cmd(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description or help,
                          formatter_class=_Formatter)


def _repo_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default="default", help="which [repo.NAME] of Infra.toml to use")


def _variant_arch(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--variant", required=required, help="image variant, e.g. aws-k8s-1.31")
    p.add_argument("--arch", required=required,
                   help="architecture: x86_64/amd64 or aarch64/arm64")


def _add_repo_commands(sub) -> None:
    p = _cmd(sub, "setup", "make sure the repo has a root role and a signing key",
             "Fetch the configured root role (checking root_role_sha512), or, when none is "
             "configured and none exists, create a local signing key and a root.json that "
             "trusts it. Running it twice changes nothing.")
    _repo_flag(p)
    p.add_argument("--root-role-path", required=True, help="where root.json is (or goes)")
    p.add_argument("--default-key-path", required=True,
                   help="local PEM signing key used when the repo configures none (mode 0600)")

    p = _cmd(sub, "repo", "build a signed TUF update repository for one variant and arch",
             "Load the existing repo (if configured) through a verifying TUF client, add the "
             "images and an update to manifest.json, sign, and write a new repo to --outdir: "
             "targets to OUTDIR/targets, metadata to OUTDIR/VARIANT/ARCH.")
    _repo_flag(p)
    _variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version",
                   help="release version (semver, leading 'v' allowed)")
    p.add_argument("--boot-image", required=True, help="boot image file")
    p.add_argument("--root-image", required=True, help="root image file")
    p.add_argument("--hash-image", required=True, help="dm-verity hash image file")
    p.add_argument("--link-target", action="append", default=[], metavar="PATH",
                   help="extra target to hard-link into the repo (repeatable)")
    p.add_argument("--copy-target", action="append", default=[], metavar="PATH",
                   help="extra target to copy into the repo (repeatable)")
    p.add_argument("--repo-expiration-policy-path", required=True,
                   help="TOML policy: how long snapshot/targets/timestamp stay valid")
    p.add_argument("--release-config-path", required=True,
                   help="Release.toml with version and migrations")
    p.add_argument("--wave-policy-path", required=True, help="TOML update wave policy")
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--default-key-path", required=True,
                   help="signing key used when the repo configures no signing_keys")
    p.add_argument("--release-start-time", default=None,
                   help="when wave offsets start: RFC3339 or 'in N hours/days/weeks' "
                   "(default: now)")
    p.add_argument("--outdir", required=True, help="directory to write the repo into")


def _add_repo_lifecycle_commands(sub) -> None:
    p = _cmd(sub, "validate-repo", "load a published repo through a verifying client",
             "Fetch metadata from the repo's metadata_base_url starting from --root-role-path "
             "and verify it; with --validate-targets also download and check every target.")
    _repo_flag(p)
    _variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--validate-targets", action="store_true",
                   help="also download every target and check its length and hashes")

    p = _cmd(sub, "check-repo-expirations", "list metadata that expires before a limit")
    _repo_flag(p)
    _variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--expiration-limit", required=True,
                   help="RFC3339 or 'in N days': report roles expiring before this")
    p.add_argument("--json", action="store_true", help="print a JSON list on stdout")

    p = _cmd(sub, "refresh-repo", "re-sign snapshot, targets and timestamp with new expiries")
    _repo_flag(p)
    _variant_arch(p)
    p.add_argument("--root-role-path", required=True, help="trusted root.json")
    p.add_argument("--default-key-path", required=True,
                   help="signing key used when the repo configures no signing_keys")
    p.add_argument("--repo-expiration-policy-path", required=True,
                   help="TOML policy: how long snapshot/targets/timestamp stay valid")
    p.add_argument("--outdir", required=True, help="directory to write the metadata into")
    p.add_argument("--unsafe-refresh", action="store_true",
                   help="refresh even if the repo has already expired")

    p = _cmd(sub, "publish-repo", "upload a built repo to its S3 bucket, timestamp last")
    _repo_flag(p)
    _variant_arch(p)
    p.add_argument("--outdir", required=True, help="the built repo (as given to 'pubsys repo')")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")

    # `root` has its own parser (pubsys/repo/root.py); everything after the word `root`,
    # --help included, is handed to it.
    p = sub.add_parser("root", help="manage a root.json (for the owner of the root keys)",
                       add_help=False)
    p.add_argument("root_args", nargs=argparse.REMAINDER)


def _add_ami_commands(sub) -> None:
    p = _cmd(sub, "ami", "register an AMI from disk images and copy it to regions",
             "Find the AMI by name and arch in the base region, or upload the images as EBS "
             "snapshots and register it; then copy it to every other region in parallel. "
             "--ami-output is rewritten as each region completes; failed regions are listed "
             "in AMI_OUTPUT.failures.json and a re-run finishes them.")
    p.add_argument("--os-image", required=True, help="raw OS disk image")
    p.add_argument("--data-image", help="raw data disk image (second volume)")
    p.add_argument("--uefi-data", help="file with the base64 UEFI variable store; sets boot "
                   "mode uefi-preferred and TPM 2.0 (an empty file means no UEFI data)")
    p.add_argument("--arch", required=True, help="x86_64/amd64 or aarch64/arm64")
    p.add_argument("--name", required=True, help="AMI name")
    p.add_argument("--description", help="AMI description")
    p.add_argument("--regions", help="comma-separated regions; the first is the base region")
    p.add_argument("--copy-regions",
                   help="comma-separated regions to copy to (base from --regions or aws.regions)")
    p.add_argument("--ami-output", required=True, help="write the region -> AMI JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--deprecate-in", metavar="DURATION",
                   help="deprecate the AMI in every region this long after it was created, "
                   "e.g. '2 years'")
    p.add_argument("--upload-concurrency", type=int, default=64, metavar="N",
                   help="snapshot blocks uploaded at once, per image")
    p.add_argument("--copy-timeout", default="2 hours", metavar="DURATION",
                   help="how long to wait for the image to become available in each region")
    p.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS",
                   help="first wait between status checks; grows up to a minute")

    p = _cmd(sub, "publish-ami", "grant or revoke launch permissions on AMIs")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    p.add_argument("--regions", help="comma-separated subset of regions (default: all in input)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true", help="add the permissions")
    g.add_argument("--revoke", action="store_true", help="remove the permissions")
    p.add_argument("--user-ids", help="comma-separated AWS account ids")
    p.add_argument("--group-names", help="comma-separated groups; 'all' means public")
    p.add_argument("--organization-arns", help="comma-separated organization ARNs")
    p.add_argument("--organizational-unit-arns", help="comma-separated OU ARNs")

    p = _cmd(sub, "validate-ami", "compare expected AMIs with what each region holds")
    p.add_argument("--expected-amis-path", required=True, help="region -> AMI JSON")
    p.add_argument("--write-results-path", help="write the results as JSON here")
    p.add_argument("--write-results-filter",
                   help="comma-separated statuses to keep in the results file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_ssm_commands(sub) -> None:
    p = _cmd(sub, "ssm", "publish SSM parameters that name the AMIs")
    p.add_argument("--ami-input", required=True, help="region -> AMI JSON from 'pubsys ami'")
    _variant_arch(p)
    p.add_argument("--version", required=True, dest="image_version", help="image version")
    p.add_argument("--regions", help="comma-separated subset of regions (default: all in input)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--allow-clobber", action="store_true",
                   help="allow changing parameters that already exist")
    p.add_argument("--allow-private-images", action="store_true",
                   help="allow parameters under /aws/ to point at private images")
    p.add_argument("--ssm-parameter-output", help="write the region -> name -> value JSON here")
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and run the refusal checks; write nothing to SSM")

    p = _cmd(sub, "promote-ssm", "copy parameters of one version to another name (e.g. latest)")
    _variant_arch(p)
    p.add_argument("--source", required=True, help="version to promote from")
    p.add_argument("--target", required=True, help="version name to promote to, e.g. latest")
    p.add_argument("--regions", help="comma-separated regions (default: aws.regions)")
    p.add_argument("--template-path", required=True, help="SSM parameter templates (TOML)")
    p.add_argument("--ssm-parameter-output", help="merge the promoted parameters into this JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="show the difference and check the sources; write nothing")

    p = _cmd(sub, "validate-ssm", "compare expected SSM parameters with what each region holds")
    p.add_argument("--expected-parameters-path", required=True,
                   help="region -> name -> value JSON")
    p.add_argument("--check-unexpected", action="store_true",
                   help="also report parameters under the prefix that are not expected")
    p.add_argument("--write-results-path", help="write the results as JSON here")
    p.add_argument("--write-results-filter",
                   help="comma-separated statuses to keep in the results file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


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


def resolve(command: str) -> Callable:
    module, func = COMMANDS[command].split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "root":
        args.root_args = rest + args.root_args
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
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
