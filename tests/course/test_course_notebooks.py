"""The course's notebooks as files: committed clean, exercises in step with solutions,
solutions scoring full marks and untouched exercises zero, every lesson shaped alike."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from coursekit.exercises import assign, notebooks
from coursekit.docker import engine
from coursekit.grading import inprocess

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
ALL = LESSONS + SOLUTIONS + sorted((ROOT / "exercises").glob("*.ipynb"))


def test_there_is_a_course():
    names = [p.stem for p in LESSONS]
    assert names[:2] == ["00-welcome", "01-containers-and-vms"], names
    assert SOLUTIONS, "no solution notebooks"


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_clean(path):
    nb = notebooks.read(path)
    assert notebooks.is_clean(nb), (f"{path.relative_to(ROOT)} has outputs or execution counts in "
                                    f"{notebooks.dirty_cells(nb)}: clear them before committing")


def test_clean_check_notices_outputs(tmp_path):
    nb = notebooks.read(LESSONS[0])
    nb.cells[1 if nb.cells[1].cell_type == "code" else 2]["execution_count"] = 3
    assert not notebooks.is_clean(nb)


def test_exercises_are_generated_from_the_current_solutions():
    stale = assign.main(check=True, root=str(ROOT))
    assert not stale, f"exercises/ is out of date for {stale}: run `coursekit assign` and commit the result"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_the_course_structure(path):
    nb = notebooks.read(path)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for part in ("**Objectives", "**Estimated time:**", "## Key points", "What you should see"):
        assert part in md, f"{path.name} lacks {part!r}"
    assert "ck.start(" in nb.cells[[c.cell_type for c in nb.cells].index("code")].source, \
        "the first code cell should be the set-up cell (ck.start)"
    assert "ck.quiz(" in code, f"{path.name} has no check-your-understanding quiz"
    assert nb.cells[-1].cell_type == "code" and "ck.finish()" in nb.cells[-1].source, \
        f"{path.name} should end with the clean-up cell ck.finish()"


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_scores_full_marks_and_exercise_zero(solution):
    if not engine.available():
        pytest.fail(f"grading the Docker questions needs the engine: {engine.status().reason}")
    ran: list = []
    full = inprocess.grade_notebook(solution, solution, executed=ran)
    assert full.status == "graded", full.message
    # every cell of a solution runs without an error (this is the solutions' only full run in the suite)
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(ran[0].cells, 1) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert full.score == full.max_score > 0, json.dumps(full.to_dict(), indent=1, default=str)[:3000]
    student = ROOT / "exercises" / solution.name
    zero = inprocess.grade_notebook(student, solution)
    assert zero.status == "graded", zero.message
    assert zero.score == 0, json.dumps(zero.to_dict(), indent=1, default=str)[:3000]
    assert all(q.status == "not attempted" for q in zero.questions.values()), \
        {k: q.status for k, q in zero.questions.items()}
