"""docs/walkthrough.md runs as written: every command of its ``sh`` blocks exits with code 0,
and the lines of the ``text`` block right after it (``...`` for lines left out) appear in what
it prints, in order. Box-drawing characters and runs of blanks are ignored on both sides, so
a table row shown as plain words matches the drawn row."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from perfcost.solver.cli.main import app
from typer.testing import CliRunner

PAGE = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"
BLOCK = re.compile(r"```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.DOTALL)
#: Table borders rich draws (light, heavy and mixed box-drawing characters).
BOX = re.compile(r"[\u2500-\u257f]")


def normalise(text: str) -> str:
    return " ".join(BOX.sub(" ", text).split())


def steps() -> list[tuple[str, list[str]]]:
    """(command, lines it must print) for each ``sh`` block of the page."""
    blocks = [(m.group("lang"), m.group("body")) for m in BLOCK.finditer(
        PAGE.read_text(encoding="utf-8"))]
    out = []
    for i, (lang, body) in enumerate(blocks):
        if lang != "sh":
            continue
        commands = [line.strip() for line in body.replace("\\\n", " ").splitlines()
                    if line.strip()]
        assert len(commands) == 1, f"one command per block: {body!r}"
        shown = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else ""
        expected = [line for line in shown.splitlines() if line.strip() not in ("", "...")]
        out.append((commands[0], expected))
    return out


STEPS = steps()


def test_the_page_trains_and_serves() -> None:
    commands = [c for c, _ in STEPS]
    assert any(c.startswith("perfcost solve llama3-70b") and "budget" in c for c in commands)
    assert any(c.startswith("perfcost solve llama3-70b") and "--objective" in c
               for c in commands)
    assert any(c.startswith("perfcost solve serve-llama3-70b") for c in commands)
    assert all(expected for _, expected in STEPS), "every command shows what it prints"


@pytest.mark.parametrize(("command", "expected"), STEPS, ids=[c[:60] for c, _ in STEPS])
def test_command_runs_and_prints_what_the_page_shows(command: str, expected: list[str]) -> None:
    words = shlex.split(command)
    assert words[0] == "perfcost"
    result = CliRunner().invoke(app, words[1:], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = normalise(result.stdout)
    at = 0
    for line in expected:
        found = printed.find(normalise(line), at)
        assert found >= 0, f"'{line.strip()}' not printed (in order) by: {command}"
        at = found + len(normalise(line))
