"""--variant, --arch and --version of every repo command are safe names: they become path
components, S3 keys and URL segments, so '.', '..', '/' and the like are refused (exit 2)."""

from __future__ import annotations

import pytest

from pubsys.cli import build_parser

COMMANDS = {
    "repo": ["--arch", "x86_64", "--version", "1.0.0", "--boot-image", "b", "--root-image",
             "r", "--hash-image", "h", "--repo-expiration-policy-path", "e",
             "--release-config-path", "R", "--wave-policy-path", "w", "--root-role-path",
             "root.json", "--default-key-path", "k", "--outdir", "out"],
    "validate-repo": ["--arch", "x86_64", "--root-role-path", "root.json"],
    "check-repo-expirations": ["--arch", "x86_64", "--root-role-path", "root.json",
                               "--expiration-limit", "in 7 days"],
    "refresh-repo": ["--arch", "x86_64", "--root-role-path", "root.json",
                     "--default-key-path", "k", "--repo-expiration-policy-path", "e",
                     "--outdir", "out"],
    "publish-repo": ["--arch", "x86_64", "--outdir", "out"],
}
UNSAFE = ["..", ".", "../aws-k8s", "aws/k8s", "aws k8s", "aws-k8s\n", "", "~root", "*"]


def _parse(command: str, *args: str):
    return build_parser().parse_args([command, *COMMANDS[command], *args])


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("variant", UNSAFE)
def test_unsafe_variant_is_bad_input_naming_the_flag(command, variant, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(command, "--variant", variant)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--variant" in err and "not a safe name" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_safe_names_are_accepted(command):
    args = _parse(command, "--variant", "aws-k8s-1.31_fips+x")
    assert args.variant == "aws-k8s-1.31_fips+x" and args.arch == "x86_64"


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("arch", ["..", "x86_64/..", "../x86_64", "arm"])
def test_unsafe_arch_is_bad_input(command, arch, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(command, "--variant", "aws-dev", "--arch", arch)
    assert e.value.code == 2 and "--arch" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["..", "1.0.0/..", "1.0.0/../x", "../1.0.0", "1.0"])
def test_unsafe_version_is_bad_input(version, capsys):
    with pytest.raises(SystemExit) as e:
        _parse("repo", "--variant", "aws-dev", "--version", version)
    assert e.value.code == 2 and "--version" in capsys.readouterr().err
