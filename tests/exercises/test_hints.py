"""Hints teach the idea, never the answer: no hint repeats the reference solution's own code.

A hint is shown when a public check fails. It may name the concept, the lesson's section, the
keys or types the answer has, and anything the exercise or its lesson already shows; it may not
hand over the solution. Measured here as code: a hint fails when it shares a run of
:data:`RUN` or more tokens (names, numbers, punctuation) with the code between the solution's
``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers for its question, unless the exercise
itself (its instructions and given code, not its check cells) or the lesson shows that run too.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from coursekit.exercises import assign, notebooks
from coursekit.grading import scoring

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9_]")
RUN = 6


def _solution_code(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        mark = line.strip()
        if mark in (assign.BEGIN, assign.END):
            inside = mark == assign.BEGIN
        elif inside and not mark.startswith(assign.STUB):
            out.append(line)
    return "\n".join(out)


def _joined(tokens: list[str]) -> str:
    return " " + " ".join(tokens) + " "


def revealing_runs(hint: str, solution: str, given: str, n: int = RUN) -> list[str]:
    """The runs of ``n`` or more tokens of ``hint`` that are in ``solution`` and not in ``given``."""
    h, sol, seen = TOKEN.findall(hint), _joined(TOKEN.findall(solution)), _joined(TOKEN.findall(given))
    out = []
    for i in range(len(h) - n + 1):
        run = _joined(h[i:i + n])
        if run in sol and run not in seen:
            out.append(run.strip())
    return out


def test_the_measure_catches_a_hint_that_spells_the_answer_and_passes_one_that_teaches():
    solution = "def deploy(name, network):\n    return swarm.service(name, BUSYBOX, SERVE, network=network, replicas=3)\n"
    given = "def deploy(name, network):\n    raise NotImplementedError\nBUSYBOX = 'coursekit/busybox:v1'"
    assert revealing_runs("swarm.service(name, BUSYBOX, SERVE, network=network, replicas=3, ...)", solution, given)
    assert not revealing_runs("A service asks the swarm for a number of identical tasks: say how many (lesson 07)",
                              solution, given)
    assert not revealing_runs("def deploy(name, network): is given", solution, given), "what the exercise shows"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_no_hint_hands_over_the_solution(solution):
    nb = notebooks.read(solution)
    exercise = notebooks.read(ROOT / "exercises" / solution.name)
    lesson = notebooks.read(next((ROOT / "notebooks").glob(solution.stem[:3] + "*.ipynb")))
    given = "\n".join(notebooks.source_of(c) for c in [*exercise.cells, *lesson.cells]
                      if assign.CHECKS_TAG not in notebooks.tags_of(c))
    cells = {c.id: c for c in nb.cells}
    answers = assign.answer_cells(nb)
    bad = {}
    for name, question in scoring.load_questions(solution).items():
        code = "\n".join(_solution_code(notebooks.source_of(cells[cid])) for cid in answers.get(name, []))
        for check in question.checks:
            runs = revealing_runs(check.hint, code, given) if check.hint else []
            if runs:
                bad[f"{name} {check.name}"] = (check.hint, runs[0])
    assert not bad, f"hints that repeat the solution's code (teach the idea instead): {bad}"
