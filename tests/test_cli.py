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
