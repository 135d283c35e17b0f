"""Every exercise graded by the class grader, as an instructor grades it: ``coursekit grade`` on a class.

Each class holds the reference solution, handed in as it is, and the untouched exercise. The
solution scores full marks, every question graded in the sandbox (those whose answers drive
Docker through the submission's own engine, its gate: containers, builds, a registry of its own,
Swarm services, builds that reach the AWS sandbox); a question that needed what the gate does not
serve (``needs=`` beyond :data:`~coursekit.grading.gate.SERVES`) would come back "needs engine", as the
feedback says. The untouched exercise scores 0, every question "not attempted". Nothing of either
is left on the engine: no container, volume, network or service of a submission, and the swarm as
it was before.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coursekit.docker import engine
from coursekit.grading import classroom, scoring
from coursekit.grading.gate import SERVES
from coursekit.grading.gate.tenant import TENANT
from coursekit.orchestrate import swarm

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_the_solution_scores_full_marks_and_the_exercise_zero(solution, tmp_path, swarm_before):
    subs = tmp_path / "subs"
    for student, source in (("solution", solution), ("untouched", ROOT / "exercises" / solution.name)):
        (subs / student).mkdir(parents=True)
        shutil.copy(source, subs / student / solution.name)
    result = classroom.grade(subs, solution, tmp_path / "out", workers=2, progress=None)
    questions = scoring.load_questions(solution)
    later = {q.name for q in questions.values() if q.needs_engine and not set(q.needs) <= SERVES}

    done = result.results["solution"]
    assert done.status == "graded", str(done)
    wrong = {n: (g.status, g.messages) for n, g in done.questions.items()
             if g.status != ("needs engine" if n in later else "passed")}
    assert not wrong, f"{solution.stem}: {wrong}"
    assert done.score == sum(q.points for q in questions.values() if q.name not in later)

    blank = result.results["untouched"]
    assert blank.score == 0, str(blank)
    for name, g in blank.questions.items():  # (without an engine, a check helper stops before the learner's code)
        assert g.status in (("not attempted", "needs engine") if name in later else ("not attempted",)), (name, g)

    cl = engine.client()
    assert not cl.containers.list(all=True, filters={"label": TENANT})
    assert not cl.volumes.list(filters={"label": TENANT}) and not cl.networks.list(filters={"label": TENANT})
    if swarm.state() == "active":
        assert not cl.services.list(filters={"label": TENANT})
    assert swarm.state() == swarm_before, "the grader turns swarm mode back as it found it"


@pytest.fixture(autouse=True)
def swarm_before():
    return swarm.state()
