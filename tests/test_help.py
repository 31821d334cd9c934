"""Help: every command's ``--help`` ends with examples, shows flags without a type placeholder,
and every example parses as the command's arguments; ``perfcost --help`` names the topics."""

from __future__ import annotations

import shlex

import pytest
import typer.main
from perfcost.solver.cli.examples import EXAMPLES
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


def test_there_are_commands_to_check() -> None:
    assert {"evaluate", "solve", "sweep", "pareto", "plan", "cost", "export"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples_and_no_type_placeholder_for_flags(name: str) -> None:
    text = help_of(name)
    assert "Example" in text
    assert f"perfcost {name} " in text  # the examples are of this command
    assert "<bool>" not in text and "BOOLEAN" not in text


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_parses(name: str) -> None:
    """Each example line is this command with options it has and the arguments it needs."""
    assert name in COMMANDS
    command = GROUP.commands[name]  # type: ignore[attr-defined]
    lines = [line.strip() for line in EXAMPLES[name].splitlines()[1:] if line.strip()]
    assert lines
    for line in lines:
        words = shlex.split(line)
        assert words[:2] == ["perfcost", name], line
        with command.make_context(name, words[2:]) as ctx:  # raises on an unknown option
            assert ctx.params


def test_top_level_help_names_every_topic() -> None:
    text = " ".join(help_of().split()).lower()
    for topic in ("training", "serving", "cost", "co-design", "fleet"):
        assert topic in text, topic
    assert "example" in text
    assert "<bool>" not in text
