"""Hostile submissions, graded as ONE class in one ``grade()`` call (so this also proves isolation).

Every hostile student starts from the solution of exercise 09 and adds one attack
(tests/fixtures/grading/hostile.py). Each test below checks one student's outcome: the attack
is contained, the student gets its own status or note, loses only the questions the attack
touched, and the three honest students beside them are graded exactly as usual.
"""
from __future__ import annotations

import json

import pytest
from fixtures.grading import classroom, hostile

from coursekit.docker import engine
from coursekit.grading import classroom as gradeclass
from coursekit.grading import local as gs, scoring
from coursekit.grading.limits import GradeLimits

A = hostile.A
LIMITS = GradeLimits(cell_timeout=6, interrupt_grace=3, timeout=90, memory="512m", submission_bytes=2_000_000)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, real_engine):
    root = tmp_path_factory.mktemp("hostile")
    made = hostile.build(root / "subs")
    res = gradeclass.grade(root / "subs", classroom.solution(A), root / "out", workers=2, limits=LIMITS,
                           progress=None)
    assert set(res.results) == set(made)
    return res


@pytest.fixture(scope="module")
def pts():
    return classroom.points(A)


def _full(pts):
    return sum(pts.values())


def _statuses(r):
    return {q: g.status for q, g in r.questions.items()}


def _only_lost(r, pts, *lost):
    """Graded, and every question passed except ``lost``."""
    assert r.status == "graded", str(r)
    assert {q for q, s in _statuses(r).items() if s != "passed"} == set(lost), str(r)
    assert r.score == _full(pts) - sum(pts[q] for q in lost)


def _evidence(r):
    return json.loads(r.answers["q4"]["value"])


def _notes(r):
    return [(c["status"], c["message"]) for c in r.cells]


@pytest.mark.slow
def test_honest_students_are_graded_as_usual_beside_the_attacks(graded, pts):
    _only_lost(graded.results["honest_full"], pts)
    _only_lost(graded.results["honest_partial"], pts, "q2", "q4")
    untouched = graded.results["honest_untouched"]
    assert untouched.score == 0 and set(_statuses(untouched).values()) == {"not attempted"}


def test_infinite_loop_is_interrupted_and_the_rest_counts(graded, pts):
    r = graded.results["infinite_loop"]
    _only_lost(r, pts)
    assert [s for s, _ in _notes(r)] == ["timed out"] and r.restarts == 0


def test_a_loop_that_ignores_interrupts_is_killed_and_skipped(graded, pts):
    r = graded.results["ignores_interrupts"]
    _only_lost(r, pts)
    assert [s for s, _ in _notes(r)] == ["hung"] and r.restarts == 1
    assert "did not stop when interrupted" in _notes(r)[0][1]


def test_sleeping_past_the_timeout(graded, pts):
    r = graded.results["sleeps_past_timeout"]
    _only_lost(r, pts)
    assert _notes(r) == [("timed out", f"it ran longer than {LIMITS.cell_timeout:g} s and was interrupted")]


def test_fork_bomb_is_contained(graded, pts):
    r = graded.results["fork_bomb"]
    _only_lost(r, pts)
    assert [s for s, _ in _notes(r)][:1] in (["crashed"], ["hung"], ["timed out"], ["error"]), _notes(r)


def test_memory_bomb_kills_only_its_kernel(graded, pts):
    r = graded.results["memory_bomb"]
    _only_lost(r, pts)
    assert _notes(r)[0][0] == "crashed" and "ran out of memory" in _notes(r)[0][1]


def test_huge_output_costs_time_not_marks(graded, pts):
    r = graded.results["huge_output"]
    _only_lost(r, pts)
    assert {s for s, _ in _notes(r)} <= {"timed out", "crashed"} and _notes(r)


def test_writing_outside_tmp_fails_everywhere(graded, pts):
    r = graded.results["writes_outside_tmp"]
    _only_lost(r, pts, "q4")
    tries = _evidence(r)
    assert len(tries) >= 12
    assert not {k: v for k, v in tries.items() if v in ("written", "done", "ran") and k != "/dev/shm/x"}, tries


def test_hidden_checks_and_solutions_are_not_in_the_sandbox(graded, pts):
    r = graded.results["reads_hidden_checks"]
    _only_lost(r, pts, "q4")
    found = _evidence(r)
    assert found["hits"] == [] and found["files_read"] > 1000, "the search ran and found nothing"
    assert {"/opt", "/tmp", "/home", "/root", "/etc"} <= set(found["done"]), found["done"]  # searched in full
    assert found["env"] == []
    for what in ("environ", "mem", "fd/1", "maps"):
        assert found[what] == "PermissionError", (what, found[what])


def test_fake_result_lines_and_files_change_nothing(graded):
    r = graded.results["fakes_results"]
    assert r.status == "graded" and r.score == 0
    assert "passed" not in _statuses(r).values()


def test_monkeypatching_the_checker_changes_nothing(graded, pts):
    r = graded.results["monkeypatches_checker"]
    _only_lost(r, pts, "q1")
    assert r.questions["q1"].status == "failed"


def test_an_object_equal_to_everything_is_not_an_answer(graded, pts):
    r = graded.results["always_equal"]
    _only_lost(r, pts, "q1", "q4")
    assert r.answers["q4"]["status"] == "invalid" and "not plain data" in r.answers["q4"]["message"]
    assert r.questions["q1"].status == "failed"


def test_sys_exit_is_just_an_error_in_that_cell(graded, pts):
    r = graded.results["sys_exit"]
    _only_lost(r, pts)
    assert [m for _, m in _notes(r)] == ["SystemExit: 3", "SystemExit: 0"] and r.restarts == 0


def test_os_exit_costs_only_the_question_of_that_cell(graded, pts):
    r = graded.results["os_exit"]
    _only_lost(r, pts, "q2")
    assert r.questions["q2"].status == "not attempted" and r.restarts == 1
    assert _notes(r)[0][0] == "crashed" and "exited with code 3" in _notes(r)[0][1]


def test_a_segfault_costs_nothing_else(graded, pts):
    r = graded.results["segfault"]
    _only_lost(r, pts)
    assert _notes(r)[0][0] == "crashed" and "segmentation fault" in _notes(r)[0][1]


def test_killing_its_parent_does_nothing(graded, pts):
    r = graded.results["kills_its_parent"]
    _only_lost(r, pts)
    assert _notes(r) == [] and r.restarts == 0


def test_no_network_connection_gets_out(graded, pts):
    r = graded.results["opens_network"]
    _only_lost(r, pts, "q4")
    tries = _evidence(r)
    assert len(tries) == 7 and not {k: v for k, v in tries.items() if v in ("connected", "resolved", "sent")}, tries


def test_filling_tmpfs_stops_at_its_size(graded, pts):
    r = graded.results["fills_tmpfs"]
    _only_lost(r, pts, "q4")
    got = _evidence(r)
    assert got["full"] == "OSError" and 32 << 20 <= got["mb"] * 1_000_000 <= 64 << 20, got  # tmpfs_size 64m


def test_a_notebook_that_is_not_json(graded):
    r = graded.results["not_json"]
    assert (r.status, r.score) == ("invalid notebook", 0) and "not valid JSON" in r.message


def test_deleted_answer_cells_are_not_attempted(graded, pts):
    r = graded.results["answers_deleted"]
    _only_lost(r, pts, "q2", "q3")
    assert r.questions["q2"].status == r.questions["q3"].status == "not attempted"


def test_redefining_the_public_helpers_does_not_fake_an_answer(graded, pts):
    r = graded.results["redefines_helpers"]
    _only_lost(r, pts, "q1")
    assert r.questions["q1"].status == "not attempted", "the course's q1_try called the stub, not the copy"


def test_a_huge_answer_is_refused(graded, pts):
    r = graded.results["huge_answer"]
    _only_lost(r, pts, "q4")
    assert "too big" in r.answers["q4"]["message"]


def test_an_answer_that_never_returns_costs_only_its_question(graded, pts):
    r = graded.results["slow_answer"]
    _only_lost(r, pts, "q1")
    assert r.questions["q1"].status == "error" and "loop forever" in r.questions["q1"].messages[0]


def test_symlinks_to_host_files_are_not_copied_in(graded, pts):
    r = graded.results["symlinks_host_files"]
    _only_lost(r, pts, "q4")
    assert _evidence(r) == {"secret": False, "etc": False, "real": "ok"}


def test_hanging_after_every_restart_ends_with_no_answers(graded):
    r = graded.results["hangs_every_time"]
    assert r.status == "graded" and r.score == 0 and r.restarts == LIMITS.restarts
    assert [s for s, _ in _notes(r)] == ["hung"] * (LIMITS.restarts + 1)
    assert set(_statuses(r).values()) == {"error"}


def test_a_submission_over_the_size_limit(graded):
    r = graded.results["too_big"]
    assert (r.status, r.score) == ("too big", 0) and "the limit is 2 MB" in r.message


def test_feedback_for_everyone_never_shows_hidden_checks(graded):
    names = [c.name for q in scoring.load_questions(classroom.solution(A)).values() for c in q.hidden]
    files = list((graded.out_dir / "feedback").glob("*.md"))
    assert len(files) == len(graded.results)
    for f in files:
        text = f.read_text()
        assert not [n for n in names if n in text], f.name


def test_nothing_is_left_running(graded):
    assert not engine.client().containers.list(all=True, filters={"label": gs.GRADE_LABEL})
