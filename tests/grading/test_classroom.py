"""``coursekit grade``: one submission in its sandbox (grading.local.run_one), then a whole class
(gradeclass.grade): gradebook, feedback, plot, log, resume and regrade. Real engine, real images."""
from __future__ import annotations

import csv
import doctest
import json
import shutil

import pytest
from fixtures.grading import classroom

from coursekit import cli
from coursekit.docker import engine
from coursekit.grading import classroom as gradeclass, limits as gradelimits
from coursekit.exercises import notebooks
from coursekit.grading import inputs, local as gs, scoring
from coursekit.errors import LimitsError
from coursekit.grading.limits import GradeLimits

A09, A05, A12, A02 = "09-cloud-computing", "05-dockerfiles", "12-iam", "02-docker-engine"


@pytest.fixture(scope="module")
def a09(real_engine):
    return inputs.load_assignment(classroom.solution(A09))


def _run(tmp_path, name, nb, assignment=None, limits=None):
    path = classroom.write(nb, tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.ipynb")
    return gs.run_one(inputs.Submission("s", path), assignment or classroom.solution(name), limits)


def _hidden_names(name):
    return [q_check.name for q in scoring.load_questions(classroom.solution(name)).values() for q_check in q.hidden]


# --------------------------------------------------------------------------- limits (no engine needed)


def test_the_limits_docstring_examples_run():
    assert doctest.testmod(gradelimits).failed == 0


@pytest.mark.parametrize("bad", [dict(network="bridge"), dict(read_only=False), dict(user="0:0"), dict(user="root"),
                                 dict(cap_drop=()), dict(timeout=0), dict(timeout=10, cell_timeout=20),
                                 dict(restarts=-1), dict(memory="lots"), dict(answers_bytes=10_000_000)])
def test_limits_refuse_a_weaker_sandbox_with_a_fix(bad):
    with pytest.raises(LimitsError) as err:
        GradeLimits(**bad)
    assert err.value.fix


def test_limits_become_the_containers_options():
    opts = GradeLimits(memory="512m", pids=99, cpus=0.5).create_options()
    assert opts["network_mode"] == "none" and opts["read_only"] is True
    assert opts["mem_limit"] == opts["memswap_limit"] == "512m"
    assert opts["pids_limit"] == 99 and opts["nano_cpus"] == 500_000_000
    assert opts["cap_drop"] == ["ALL"] and opts["security_opt"] == ["no-new-privileges"]
    assert opts["user"] == "10001:10001" and "noexec" in opts["tmpfs"]["/tmp"]
    assert {(u["Name"], u["Hard"]) for u in opts["ulimits"]} >= {("core", 0), ("nofile", 1024)}
    assert opts["log_config"]["Config"]["max-size"] == "16m"
    assert "volumes" not in opts and "mounts" not in opts  # never the Docker socket, nor anything else


# --------------------------------------------------------------------------- what goes into the sandbox


def test_the_sandbox_runs_the_exercises_public_check_cells_never_the_students(a09):
    ids = classroom.question_cells(A09)
    check_q1 = next(cid for cid, src, _ in a09.check_cells if 'question("q1"' in src)
    check_q3 = next(cid for cid, src, _ in a09.check_cells if 'question("q3"' in src)
    nb = classroom.student(A09, solved=["q2"], replace={check_q1: "print('my own checks')"}, drop=[check_q3])
    cells = inputs.cells_to_run(nb, a09)
    text = "\n".join(c["source"] for c in cells)
    assert "my own checks" not in text
    assert [c["kind"] for c in cells].count("checks") == len(a09.check_cells)
    restored = next(i for i, c in enumerate(cells) if 'question("q3"' in c["source"])
    assert cells[restored - 1]["id"] == ids["q3"][0], "a deleted check cell goes back after the cell it followed"
    for secret in _hidden_names(A09) + ["@hidden", "### BEGIN SOLUTION"]:
        assert secret not in text


# --------------------------------------------------------------------------- one submission


def test_09_solution_full_marks_exercise_zero_partial_in_between(tmp_path, a09):
    full = _run(tmp_path, A09, classroom.student(A09, solved=list(a09.questions)), a09)
    assert (full.status, full.score) == ("graded", a09.max_score), str(full)
    zero = _run(tmp_path, A09, classroom.student(A09), a09)
    assert (zero.status, zero.score) == ("graded", 0), str(zero)
    assert {g.status for g in zero.questions.values()} == {"not attempted"}
    part = _run(tmp_path, A09, classroom.student(A09, solved=["q1", "q3"]), a09)
    assert part.score == a09.questions["q1"].points + a09.questions["q3"].points, str(part)
    assert [part.questions[q].status for q in ("q1", "q2", "q3", "q4")] == \
        ["passed", "not attempted", "passed", "not attempted"]
    t = full.timings
    assert 0 < t["start_to_first_cell"] <= t["sandbox"] <= t["total"], t


def test_12_iam_runs_moto_offline_inside_the_sandbox(tmp_path, real_engine):
    full = _run(tmp_path, A12, classroom.student(A12, solved=list(classroom.points(A12))))
    assert (full.status, full.score) == ("graded", full.max_score), str(full)
    part = _run(tmp_path, A12, classroom.student(A12, solved=["q2"]))
    assert part.score == classroom.points(A12)["q2"], str(part)
    assert part.questions["q1"].status == "not attempted"


@pytest.mark.slow
def test_05_dockerfiles_are_built_and_run_by_the_trusted_grader(tmp_path, real_engine):
    every = list(classroom.points(A05))
    full = _run(tmp_path, A05, classroom.student(A05, solved=every))
    assert (full.status, full.score) == ("graded", full.max_score), str(full)
    assert full.answers["q1"]["status"] == "answered" and "FROM" in full.answers["q1"]["value"], \
        "the Dockerfile is collected as text in the sandbox"
    q1 = classroom.question_cells(A05)["q1"][0]
    as_root = classroom.unmarked(notebooks.source_of(
        {c.id: c for c in notebooks.read(classroom.solution(A05)).cells}[q1])).replace("USER app\n", "")
    part = _run(tmp_path, A05, classroom.student(A05, solved=every, replace={q1: as_root}))
    assert part.questions["q1"].status == "failed" and part.score == full.max_score - part.questions["q1"].max_points
    assert part.questions["q1"].public_passed == part.questions["q1"].public_total, "only a hidden check fails"


def test_answers_that_drive_docker_are_graded_through_the_submissions_own_engine(tmp_path, real_engine):
    """Exercise 02 talks to the engine (the raw API, containers it starts): its gate serves it, nothing is left."""
    res = _run(tmp_path, A02, classroom.student(A02, solved=list(classroom.points(A02))))
    assert (res.status, res.score) == ("graded", res.max_score), str(res)
    assert all(g.status == "passed" for g in res.questions.values())
    assert not engine.client().containers.list(all=True, filters={"label": "org.coursekit.tenant"})
    assert not engine.client().networks.list(filters={"label": "org.coursekit.tenant"})


def test_an_answer_that_needs_more_than_the_gate_serves_is_reported_needs_engine(tmp_path, real_engine, monkeypatch):
    """A question that needs what the gate does not serve (here: a gate without Swarm, as an older grader's) is
    not run in the sandbox: "needs engine", and the feedback says why; the rest is graded."""
    from coursekit.grading import gate

    monkeypatch.setattr(gate, "SERVES", gate.SERVES - {"swarm"})
    a07 = "07-orchestration"
    res = _run(tmp_path, a07, classroom.student(a07, solved=list(classroom.points(a07))))
    assert res.status == "graded"
    needs = {q for q, g in res.questions.items() if g.status == "needs engine"}
    swarm = {q.name for q in scoring.load_questions(classroom.solution(a07)).values() if "swarm" in q.needs}
    assert needs == swarm and needs == {q for q, a in res.answers.items() if a["status"] == "needs engine"}
    assert all(res.questions[q].status == "passed" for q in res.questions if q not in needs)
    text = gradeclass.feedback(res, inputs.load_assignment(classroom.solution(a07)))
    assert gradeclass.NEEDS_ENGINE_NOTE in text


def test_the_sandbox_is_what_the_limits_say(tmp_path, a09):
    probe = classroom.SANDBOX_PROBE
    q4 = classroom.question_cells(A09)["q4"][0]
    res = _run(tmp_path, A09, classroom.student(A09, replace={q4: probe}), a09, GradeLimits(memory="700m", pids=200))
    facts = json.loads(res.answers["q4"]["value"])
    assert facts["uid"] == 10001 and facts["cap_eff"] == "0000000000000000" and facts["nnp"] == "1"
    assert facts["interfaces"] == ["lo"] and "connected" not in facts["net"].values() and not facts["socket"]
    assert not facts["root_writable"] and facts["tmp_writable"]
    assert {"noexec", "nosuid", "nodev"} <= set(facts["tmp"][0].split(","))
    assert facts["core"] == [0, 0] and facts["pids"] == "200"
    assert int(facts["memory"]) == 700 << 20
    assert facts["swap"] in (str(700 << 20), "0"), "no swap on top of the memory limit"


# --------------------------------------------------------------------------- a class


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, real_engine):
    root = tmp_path_factory.mktemp("class")
    expected = classroom.class_of_09(root / "subs")
    lines = []
    res = gradeclass.grade(root / "subs", classroom.solution(A09), root / "out", workers=2, progress=lines.append)
    return root, expected, res, lines


def _book(out):
    with open(out / "gradebook.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def test_a_class_gives_the_expected_gradebook_exactly(graded_class):
    root, expected, res, _ = graded_class
    book = _book(root / "out")
    assert set(book) == set(expected)
    for student, want in expected.items():
        got = {k: book[student][k] for k in want}
        assert got == {k: (f"{v:g}" if not isinstance(v, str) else v) for k, v in want.items()}, student
    assert sorted(res.ran) == sorted(expected) and not res.kept


def test_feedback_has_hints_and_counts_hidden_checks_but_never_shows_them(graded_class):
    root, expected, res, _ = graded_class
    files = {p.stem: p.read_text() for p in (root / "out" / "feedback").glob("*.md")}
    assert set(files) == set(expected)
    hal = files["hal"]  # q1 off by one
    assert "## q1 · 0 / 3 · failed" in hal and "✘ months_to_break_even(1200, 100, 200) should be 12" in hal
    assert "Hint: " in hal and "hidden checks: 0 of 1 passed" in hal
    assert "not valid JSON" in files["max"] and "/tmp/" not in files["max"]
    secrets = _hidden_names(A09) + ["@hidden", "assert answer =="]
    for name, text in files.items():
        assert not [s for s in secrets if s in text], name


def test_the_class_plot_and_the_log(graded_class):
    root, expected, res, lines = graded_class
    png = (root / "out" / "class.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    log = (root / "out" / "grade.log").read_text()
    for student in expected:
        assert f"] {student}: " in log
    assert any(line.startswith("[13/13]") for line in lines), "progress is shown"
    assert "first cell after" in log


def test_resume_regrades_nothing_done_and_only_what_changed(graded_class, tmp_path):
    root, expected, res, _ = graded_class
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    again = gradeclass.grade(root / "subs", classroom.solution(A09), out, workers=2, progress=None)
    assert again.ran == [] and sorted(again.kept) == sorted(expected)
    q4 = classroom.question_cells(A09)["q4"][0]
    classroom.write(classroom.student(A09, replace={q4: 'q4 = "a"'}), root / "subs" / "cyd" / f"{A09}.ipynb")
    try:
        third = gradeclass.grade(root / "subs", classroom.solution(A09), out, workers=2, progress=None)
        assert third.ran == ["cyd"] and third.results["cyd"].questions["q4"].status in ("passed", "failed")
    finally:
        classroom.write(classroom.student(A09), root / "subs" / "cyd" / f"{A09}.ipynb")


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(graded_class, tmp_path):
    root = graded_class[0]
    with pytest.raises(KeyboardInterrupt):
        gradeclass.grade(root / "subs", classroom.solution(A09), tmp_path / "out", workers=2,
                         progress=classroom.stop_after(3))
    saved = [json.loads(line)["student"] for line in (tmp_path / "out" / "state.jsonl").read_text().splitlines()]
    assert len(saved) == 3
    rest = gradeclass.grade(root / "subs", classroom.solution(A09), tmp_path / "out", workers=2, progress=None)
    assert sorted(rest.kept) == sorted(saved) and len(rest.ran) == len(graded_class[1]) - 3
    assert _book(tmp_path / "out") == _book(root / "out")
    assert not engine.client().containers.list(all=True, filters={"label": gs.GRADE_LABEL})


def test_regrade_one_student_or_one_question(graded_class, tmp_path):
    root, expected, res, _ = graded_class
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    one = gradeclass.grade(root / "subs", classroom.solution(A09), out, students=["gus"], progress=None)
    assert one.ran == ["gus"] and len(one.kept) == len(expected) - 1
    # the instructor decides gus's letter is right too: edit the hidden check, re-score q4 only
    nb = notebooks.read(classroom.solution(A09))
    for cell in nb.cells:
        if 'question("q4"' in cell.source:
            wrong = classroom.wrong_q4()
            cell.source = cell.source.replace("assert answer ==", f"assert answer == {wrong!r} or answer ==")
    fixed = tmp_path / "solutions" / f"{A09}.ipynb"
    fixed.parent.mkdir()
    notebooks.write(nb, fixed)
    again = gradeclass.grade(root / "subs", fixed, out, questions=["q4"], progress=None)
    assert again.ran == [] and "gus" in again.rescored
    book = _book(out)
    assert book["gus"]["q4"] == "1" and book["gus"]["total"] == "8"
    assert {s: r["total"] for s, r in book.items() if s != "gus"} == \
        {s: r["total"] for s, r in _book(root / "out").items() if s != "gus"}


def test_the_cli_is_a_thin_layer(graded_class, tmp_path, capsys):
    root = graded_class[0]
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(root / "subs" / "bea.ipynb", subs / "bea.ipynb")
    code = cli.main(["grade", str(subs), "--assignment", str(classroom.solution(A09)), "--out", str(tmp_path / "o"),
                     "--workers", "1", "--timeout", "120"])
    assert code == 0 and _book(tmp_path / "o")["bea"]["total"] == "8"
    assert "1 student (1 graded)" in capsys.readouterr().out
    code = cli.main(["grade", str(subs), "--assignment", str(classroom.solution(A09)), "--out", str(tmp_path / "o"),
                     "--student", "nobody"])
    err = capsys.readouterr().err
    assert code == 2 and "no student named nobody" in err and "use one of: bea" in err


def test_dockerfile_answers_collected_without_an_engine_are_checked_once_one_answers(tmp_path, real_engine):
    subs = tmp_path / "subs"
    classroom.write(classroom.student(A05, solved=list(classroom.points(A05))), subs / "zoe.ipynb")
    first = gradeclass.grade(subs, classroom.solution(A05), tmp_path / "out", workers=1, progress=None,
                             engine_available=False)
    zoe = first.results["zoe"]
    waiting = {q for q, g in zoe.questions.items() if g.status == "needs engine"}
    assert waiting == {q.name for q in scoring.load_questions(classroom.solution(A05)).values() if q.needs_engine}
    assert zoe.score == zoe.max_score - sum(zoe.questions[q].max_points for q in waiting)
    again = gradeclass.grade(subs, classroom.solution(A05), tmp_path / "out", workers=1, progress=None)
    assert again.ran == [] and again.rescored == ["zoe"], "no sandbox: the saved answers are built and run"
    assert again.results["zoe"].score == zoe.max_score


@pytest.mark.slow
def test_a_sandbox_past_its_wall_clock_is_killed_and_timed_out(tmp_path, a09):
    hang = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    nb = classroom.student(A09, solved=list(a09.questions), append=[hang])
    res = _run(tmp_path, A09, nb, a09, GradeLimits(timeout=12, cell_timeout=12, interrupt_grace=5))
    assert (res.status, res.score) == ("timed out", 0), str(res)
    assert "12 s" in res.message and set(g.status for g in res.questions.values()) == {"timed out"}
    assert not engine.client().containers.list(all=True, filters={"label": gs.GRADE_LABEL})


def test_a_class_that_deploys_services_on_an_engine_that_cannot_be_a_manager_stops_before_anyone(monkeypatch):
    """On a swarm worker (or an engine whose swarm is broken) the grader says so, instead of giving every student
    a 0 for services it could not run."""
    from coursekit.errors import GradingError, OrchestrationError
    from coursekit.orchestrate import swarm

    def worker(lesson=None):
        raise OrchestrationError("this engine is a swarm worker, not a manager: services cannot be created here",
                                 "run the lesson on a manager node, or leave that swarm (`docker swarm leave`)")

    monkeypatch.setattr(swarm, "state", lambda: "active")
    monkeypatch.setattr(swarm, "init", worker)
    task = inputs.load_assignment(classroom.solution("07-orchestration"))
    with pytest.raises(GradingError) as err:
        with gradeclass._swarm_mode(task, True, print):
            pytest.fail("graded on an engine that cannot run the services")
    assert "deploy Swarm services" in err.value.problem and "swarm worker" in err.value.problem
    with gradeclass._swarm_mode(inputs.load_assignment(classroom.solution("09-cloud-computing")), True, print):
        pass  # an assignment without services never asks
