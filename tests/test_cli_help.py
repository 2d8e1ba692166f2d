"""Every option of every command says what it is for in `--help` (a clinical lead reads the
help, not the code), except the few whose name and choices say it all."""

from __future__ import annotations

import click

from tui.cli import cli

#: Options whose choices are the whole story: `--format [text|json]` and the like.
SELF_EXPLAINING = {"--format", "--port"}


def _commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_option_has_help_text():
    missing = [f"pathways {name} {option.opts[0]}"
               for name, command in _commands(cli)
               for option in command.params
               if isinstance(option, click.Option) and not option.help and option.opts[0] not in SELF_EXPLAINING]
    assert missing == []


def test_an_as_of_date_written_day_first_is_given_back_as_the_date_to_write(tmp_path):
    from click.testing import CliRunner

    records = tmp_path / "r.jsonl"
    records.write_text('{"patient": {"id": "a"}}\n')
    for written in ("01/04/2024", "2024-4-1"):
        done = CliRunner().invoke(cli, ["run", "library/evercare.pw", "--data", str(records), "--as-of", written])
        assert done.exit_code == 2
        assert f"'{written}' is not a date: dates are written YYYY-MM-DD; write it as `2024-04-01`" in done.output
