"""The CLI contract: every subcommand and flag explains itself; exit codes are stable."""

import argparse
import subprocess
import sys

import pytest

from pubsys import cli


def subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action


def test_every_subcommand_has_a_one_line_help_and_a_handler():
    parser, action = subparsers()
    helps = {c.dest: c.help for c in action._choices_actions}
    assert set(helps) == set(cli.COMMANDS)
    assert all(helps[name] and "\n" not in helps[name] for name in helps)
    for name in cli.COMMANDS:
        assert callable(cli.resolve(name))


def test_every_flag_has_help_text():
    def check(prog: str, parser: argparse.ArgumentParser) -> None:
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():  # nested subcommands (root's)
                    check(f"{prog} {name}", sub)
            elif a.option_strings and a.dest != "help":
                assert a.help, f"{prog} {a.option_strings} has no help"

    _, action = subparsers()
    for name, sub in action.choices.items():
        check(name, sub)


def test_root_help_lists_its_subcommands():
    p = subprocess.run([sys.executable, "-m", "pubsys.cli", "root", "--help"],
                       capture_output=True, text=True)
    assert p.returncode == 0
    for word in ("init", "add-key", "remove-key", "set-threshold", "expire", "bump-version",
                 "sign"):
        assert word in p.stdout


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_of_each_subcommand_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert command in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["repo", "--variant", "x"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["validate-ami", "--expected-amis-path", "x", "--bogus"])
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# --- --log-level is global, as in Bottlerocket's pubsys (issue 10 item 6) ------------------

VALIDATE = ["validate-repo", "--variant", "v", "--arch", "x86_64", "--root-role-path", "r"]


@pytest.mark.parametrize("argv, level", [
    (VALIDATE, "INFO"),
    (["--log-level", "debug", *VALIDATE], "DEBUG"),
    ([*VALIDATE, "--log-level", "info"], "INFO"),
    (["--log-level", "error", *VALIDATE, "--log-level", "Trace"], "TRACE"),
    (["--log-level", "off", *VALIDATE], "OFF"),
    ([*VALIDATE, "--log-level", "OFF"], "OFF"),
    (["root", "sign", "root.json", "-k", "k.pem", "--log-level", "warn"], "WARN"),
    (["root", "--log-level", "warn", "expire", "root.json", "in 3 days"], "WARN"),
])
def test_log_level_anywhere_any_case(argv, level):
    assert cli.build_parser().parse_args(argv).log_level == level


def test_every_command_and_subcommand_takes_log_level():
    def check(prog: str, parser: argparse.ArgumentParser) -> None:
        assert "--log-level" in parser._option_string_actions, prog
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    check(f"{prog} {name}", sub)

    check("pubsys", cli.build_parser())


def test_unknown_log_level_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*VALIDATE, "--log-level", "verbose"])
    assert e.value.code == 2
    assert "--log-level" in capsys.readouterr().err


def test_log_level_after_the_command_takes_effect(tmp_path, run_pubsys):
    flags = ("--root-role-path", "root.json", "--default-key-path", "key.pem")
    r = run_pubsys("setup", *flags, "--log-level", "info")
    assert r.returncode == 0 and "created root role" in r.stderr, r
    (tmp_path / "root.json").unlink()
    r = run_pubsys("--log-level", "INFO", "setup", *flags, "--log-level", "warn")
    assert r.returncode == 0 and "created root role" not in r.stderr, r
    assert (tmp_path / "root.json").is_file()


@pytest.mark.parametrize("infra, code", [
    ("[repo.default]\nbogus = 1\n", 2),  # bad input
    ('[repo.default]\nroot_role_url = "file:///nonexistent/root.json"\n'
     f'root_role_sha512 = "{"0" * 128}"\n', 1),  # failed
])
def test_log_level_off_logs_nothing_and_keeps_exit_codes(infra, code, tmp_path, run_pubsys):
    (tmp_path / "Infra.toml").write_text(infra)
    flags = ("setup", "--root-role-path", "root.json", "--default-key-path", "key.pem")
    loud = run_pubsys(*flags)
    assert loud.returncode == code and "[ERROR]" in loud.stderr, loud
    for quiet in (run_pubsys("--log-level", "OFF", *flags),
                  run_pubsys(*flags, "--log-level", "off")):
        assert (quiet.returncode, quiet.stderr, quiet.stdout) == (code, "", ""), quiet
