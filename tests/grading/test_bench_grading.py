"""The grading benchmark's generated class (bench/submissions.py) cannot drift from what grading really gives.

bench/grading.py itself needs PyPI and minutes, so it is not run here. What it relies on is: each
generated notebook scores exactly the points its generator expects, and the nbgrader test cells it
builds pass for right answers and fail for the others. Both are checked here, without a sandbox: four
notebooks that between them hold every kind of answer to every question are graded locally in a
kernel (coursekit.grading.grade_notebook), and the nbgrader test cells are run in-process.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from coursekit.exercises import assign, checks, notebooks
from coursekit.grading import inprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import nbgrader_course  # noqa: E402
import submissions  # noqa: E402


@pytest.fixture(scope="module")
def gen():
    return submissions.Generator()


def latin_square(gen) -> list[dict[str, str]]:
    """Four students: student i answers question j with kind (i + j) mod 4, so every pair occurs once."""
    qs = list(gen.points)
    kinds = submissions.KINDS
    return [{q: kinds[(i + j) % len(kinds)] for j, q in enumerate(qs)} for i in range(len(kinds))]


def test_every_kind_of_answer_scores_what_the_generator_expects(gen, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_NO_ENGINE", "1")  # the kernel must not touch the engine (as in the sandbox)
    for i, kinds in enumerate(latin_square(gen)):
        path = tmp_path / f"student{i}" / f"{gen.name}.ipynb"
        notebooks.write(gen.notebook(kinds), path)
        got = inprocess.grade_notebook(path, submissions.solution(), timeout=120)
        want = gen.expected(kinds)
        assert got.status == "graded", str(got)
        assert {q: g.points for q, g in got.questions.items()} == {q: want[q] for q in gen.points}, (kinds, str(got))
        assert got.score == want["total"]
        for q, kind in kinds.items():
            status = got.questions[q].status
            assert (status == "passed") == (kind == "right"), (q, kind, status)
            if kind == "stub":
                assert status == "not attempted", (q, status)


def test_the_class_is_a_seeded_mix_of_full_untouched_and_partial(gen, tmp_path):
    plan = submissions.plan(gen, 100, seed=7)
    assert plan == submissions.plan(gen, 100, seed=7) != submissions.plan(gen, 100, seed=8)
    roles = Counter(submissions.role(k) for k in plan.values())
    assert roles == {"full": 34, "untouched": 33, "partial": 33}
    partial = [k for k in plan.values() if submissions.role(k) == "partial"]
    assert all("right" in k.values() and set(k.values()) != {"right"} for k in partial)
    assert {kind for k in partial for kind in k.values()} == set(submissions.KINDS)

    expected = submissions.write_class(tmp_path, n=9, seed=7, gen=gen)
    assert sorted(expected) == [f"s{i:03d}" for i in range(1, 10)]
    for student, want in expected.items():
        nb = notebooks.read(tmp_path / student / f"{gen.name}.ipynb")
        answers = {c.id: c.source for c in nb.cells}
        for q, kind in want["kinds"].items():
            source = answers[gen.cell[q]]
            assert (assign.YOUR_CODE in source) == (kind == "stub")
            assert (source == gen.sources[q]["right"]) == (kind == "right")
        assert want["total"] == sum(gen.points[q] for q, k in want["kinds"].items() if k == "right")


def test_a_mistake_that_no_longer_applies_to_the_solution_stops_the_generator(monkeypatch):
    monkeypatch.setitem(submissions.EDITS, "q2", {"wrong": ("return capacity", "return capacity + 1")})
    with pytest.raises(RuntimeError, match="update bench/submissions.EDITS"):
        submissions.Generator()


def test_nbgrader_test_cells_pass_only_for_right_answers(gen):
    """Each question's nbgrader test cell (public + hidden asserts) run on each kind of answer."""
    source = nbgrader_course.source_notebook(gen.solution)
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert {q: c.metadata["nbgrader"]["points"] for q, c in tests.items()} == gen.points
    for q, cell in tests.items():
        assert "### BEGIN HIDDEN TESTS" in cell.source and "@hidden" in cell.source.split("### BEGIN HIDDEN")[1]
        for kind in submissions.KINDS:
            answer = gen.sources[q][kind] if kind != "stub" else \
                next(c.source for c in gen.exercise.cells if c.id == gen.cell[q])
            ns: dict = {}
            with checks.collecting(checks.Registry()):
                exec("import coursekit as ck\nfrom coursekit import cloudmodels as cm", ns)  # noqa: S102
                try:
                    exec(answer, ns)  # noqa: S102 - the course's own generated answers
                except Exception:  # noqa: BLE001, S110 - a cell that raises, as in the notebook
                    pass
                try:
                    exec(cell.source, ns)  # noqa: S102
                    passed = True
                except Exception:  # noqa: BLE001 - nbgrader: a test cell that raises scores zero
                    passed = False
            assert passed == (kind == "right"), (q, kind)
