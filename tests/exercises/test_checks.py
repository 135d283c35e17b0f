"""check() in a learner's kernel, and grading a notebook against its solution's checks."""
from __future__ import annotations

import linecache

import nbformat
import pytest
from fixtures.course_fixtures import CHECKS_Q1, CHECKS_Q2, CHECKS_Q3, set_source, write_course
from nbclient import NotebookClient

from coursekit.exercises import assign, checks
from coursekit.grading import inprocess, protocol, scoring
from coursekit.exercises.checks import Registry, collecting
from coursekit.errors import CheckError, EngineUnavailable

HIDDEN_TEXT = ("q1_secret_exact", "SECRET-HIDDEN-MESSAGE", "q2_exact_ports", "q3_secret", "answer == ",
               "sorted(answer)")


def make_registry(*cells: str) -> Registry:
    reg = Registry()
    ns: dict = {}
    with collecting(reg):
        for src in cells:
            exec(compile(src, "<check cell>", "exec"), ns)  # noqa: S102
    return reg


@pytest.fixture
def reg():
    return make_registry(CHECKS_Q1, CHECKS_Q2, CHECKS_Q3)


def learner_code(source: str, filename: str = "/tmp/ipykernel_1/cell7.py") -> dict:
    """Run code as if typed in a notebook cell (source registered like IPython does)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns: dict = {}
    exec(compile(source, filename, "exec"), ns)  # noqa: S102
    return ns


def shown(result) -> str:
    return repr(result) + "\n" + result._repr_html_()


def assert_no_hidden(text: str) -> None:
    for secret in HIDDEN_TEXT:
        assert secret not in text, secret


# --------------------------------------------------------------------------- check(): statuses


def test_passed(reg):
    ns = learner_code("def shout(text):\n    return text.upper() + '!'\n")
    r = reg.check("q1", namespace=ns)
    assert (r.status, r.passed, r.total) == ("passed", 2, 2) and bool(r)
    assert "✔ q1: passed 2/2 public checks" in repr(r)
    assert "✔ the answer is a string" in repr(r) and "Hint" not in shown(r)
    assert "✔" in r._repr_html_() and "coursekit-passed" in r._repr_html_()
    assert_no_hidden(shown(r))


def test_failed_with_message_and_hint(reg):
    ns = learner_code("def shout(text):\n    return text.upper()\n")
    r = reg.check("q1", namespace=ns)
    assert (r.status, r.passed, r.total) == ("failed", 1, 2) and not r
    assert "✘ the result should end with '!'" in repr(r)
    assert r.hint == "Add an exclamation mark at the end"
    assert "Hint: Add an exclamation mark at the end" in repr(r)
    assert "<b>Hint:</b> Add an exclamation mark at the end" in r._repr_html_() and "✘" in r._repr_html_()
    assert_no_hidden(shown(r))


def test_hint_renders_code_spans(reg):
    r = reg.check("q1", namespace=learner_code("def shout(text):\n    return 42\n"))
    assert r.status == "failed" and r.hint == "Use `str.upper`"
    assert "<code>str.upper</code>" in r._repr_html_()
    # the second check could not even run on an int: a failure with a reason, not a crash
    assert "the check could not run on your answer (AttributeError" in repr(r)


def test_public_pass_does_not_reveal_failing_hidden_check(reg):
    r = reg.check("q1", namespace=learner_code("def shout(text):\n    return 'HELLO!'\n"))
    assert r.status == "passed"  # the hidden exact-value check would fail; check() never runs it
    assert_no_hidden(shown(r))


@pytest.mark.parametrize("source, words", [
    ("", "`shout` is not defined yet"),
    ("def shout(text):\n    ...\n", "gave None"),
    ("def shout(text):\n    raise NotImplementedError\n", "not implemented yet"),
])
def test_not_attempted_q1(reg, source, words):
    r = reg.check("q1", namespace=learner_code(source))
    assert r.status == "not attempted"
    assert words in repr(r) and "Traceback" not in shown(r)


@pytest.mark.parametrize("source, words", [
    ("ports = ...", "`ports` is still `...`"),
    ("ports = None", "gave None"),
    ("ports = [80, ...]", "`answer[1]` is still `...`"),
    ("ports = [None, None]", "gave None"),          # several calls of a still-stubbed function
    ("ports = {'a': None, 'b': [None]}", "gave None"),
])
def test_not_attempted_placeholders(reg, source, words):
    r = reg.check("q2", namespace=learner_code(source))
    assert r.status == "not attempted" and words in repr(r)


def test_a_partly_filled_list_is_an_attempt(reg):
    r = reg.check("q2", namespace=learner_code("ports = [80, None]"))
    assert r.status != "not attempted"


def test_learner_exception_is_error_not_traceback(reg):
    ns = learner_code("def shout(text):\n    n = int(text)\n    return str(n)\n")
    r = reg.check("q1", namespace=ns)
    assert r.status == "error"
    text = repr(r)
    assert "your code raised ValueError: invalid literal for int() with base 10: 'hi'" in text
    assert "(in shout, line 2: `n = int(text)`)" in text
    assert "Traceback" not in shown(r) and "coursekit/exercises/checks.py" not in shown(r)


def test_nameerror_inside_learner_function_is_an_error(reg):
    r = reg.check("q1", namespace=learner_code("def shout(text):\n    return txt.upper()\n"))
    assert r.status == "error"
    assert "NameError: name 'txt' is not defined (in shout, line 2" in repr(r)


def test_coursekit_error_in_learner_code_reads_as_advice(reg):
    ns = learner_code("from coursekit.errors import CoursekitError\n"
                      "def shout(text):\n    raise CoursekitError('the image is missing', fix='build it first')\n")
    r = reg.check("q1", namespace=ns)
    assert r.status == "error"
    assert "the image is missing" in repr(r) and "What to do: build it first" in repr(r)


@pytest.mark.parametrize("source, words", [
    ("ports = {80, 443}", "the answer is a set, not plain data: use sorted(...)"),
    ("ports = [b'80']", "`answer[0]` is a bytes"),
    ("ports = [float('nan')]", "JSON cannot carry"),
    ("ports = {80: 'http'}", "has a key 80 of type int"),
    ("import pathlib\nports = pathlib.Path('x')", "PosixPath, not plain data"),
    ("ports = ['x' * 1_100_000]", "too big"),
    ("ports = []\nports.append(ports)", "nested more than"),
])
def test_answer_must_be_plain_json(reg, source, words):
    r = reg.check("q2", namespace=learner_code(source))
    assert r.status == "failed" and words in repr(r), repr(r)


def test_tuple_answers_arrive_as_lists(reg):
    seen = []
    reg.add_check("q2", lambda a: seen.append(a), hidden=False)
    r = reg.check("q2", namespace={"ports": (80, 443)})
    assert r.status == "passed" and seen == [[80, 443]]


def test_each_check_gets_its_own_copy():
    reg = make_registry("from coursekit.exercises.checks import question, public\n"
                        "question('q', answer='x')\n"
                        "@public('q')\ndef mutate(a):\n    a.append(1)\n"
                        "@public('q')\ndef still_empty(a):\n    assert a == [], 'mutated'\n")
    ns = {"x": []}
    assert reg.check("q", namespace=ns).status == "passed" and ns["x"] == []


def test_needs_engine(reg):
    ns = learner_code('dockerfile = "FROM busybox"')
    r = reg.check("q3", namespace=ns, engine_available=False)
    assert r.status == "needs engine" and "checked" in repr(r) and "graded" in repr(r)
    assert reg.check("q3", namespace=ns, engine_available=True).status == "passed"


def test_answer_that_needs_the_engine_without_one():
    def no_engine():
        raise EngineUnavailable("no Docker engine here", "start Docker")
    reg2 = make_registry("from coursekit.exercises.checks import question, public\n"
                         "question('qe', answer='hostname_of(\"x\")', needs_engine=True)\n"
                         "@public('qe')\ndef ok(a):\n    pass\n")
    r = reg2.check("qe", namespace={"hostname_of": lambda image: no_engine()})
    assert r.status == "needs engine" and "no Docker engine here" in repr(r)


def test_unknown_question_lists_known_ones(reg):
    with pytest.raises(CheckError) as info:
        reg.check("q9", namespace={})
    msg = str(info.value)
    assert "'q9'" in msg and "q1, q2, q3" in msg and "run the cell that defines its checks first" in msg


def test_check_all_in_order(reg):
    ns = learner_code("def shout(text):\n    return text.upper() + '!'\nports = [80]")
    results = reg.check(namespace=ns)
    assert [r.question for r in results] == ["q1", "q2", "q3"]
    assert [r.status for r in results] == ["passed", "passed", "not attempted"]
    assert "2 of 3 questions pass their public checks" in repr(results)
    assert_no_hidden(repr(results) + results._repr_html_())


def test_rerunning_a_check_cell_replaces_not_duplicates():
    reg = make_registry(CHECKS_Q1, CHECKS_Q2, CHECKS_Q1)
    assert list(reg.questions) == ["q1", "q2"]
    q1 = reg.questions["q1"]
    assert [c.name for c in q1.public] == ["q1_is_text", "q1_ends_with_bang"] and len(q1.hidden) == 1
    assert "q1_secret_exact" not in repr(q1)


@pytest.mark.parametrize("source, words", [
    ("@public('nope')\ndef f(a): pass", "call question('nope', answer=...) before its checks"),
    ("@public\ndef f(a): pass", "needs the question's name"),
    ("question('q', answer='x = 1')", "is not a Python expression"),
    ("question('q', answer='x', points=0)", "points must be a positive number"),
    ("question('a b', answer='x')", "a question name must be"),
])
def test_authoring_mistakes(source, words):
    with pytest.raises(CheckError) as info:
        make_registry("from coursekit.exercises.checks import question, public, hidden\n" + source)
    assert words in str(info.value)


def test_module_level_check_uses_the_kernel_registry(monkeypatch, reg):
    monkeypatch.setattr(checks, "REGISTRY", Registry())
    with pytest.raises(CheckError, match="no questions are defined yet"):
        checks.check()
    monkeypatch.setattr(checks, "REGISTRY", reg)
    monkeypatch.setattr(checks, "_user_namespace", lambda: {"ports": [1]})
    assert checks.check("q2").status == "passed"
    import coursekit
    assert coursekit.check is checks.check


# --------------------------------------------------------------------------- in a real kernel


def run_notebook(path):
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [str(v) for v in out.get("data", {}).values()]
            if out.get("output_type") == "error":
                parts.append("ERROR-OUTPUT " + out.get("ename", ""))
    return "\n".join(parts)


def test_in_a_kernel_solution_passes_exercise_not_attempted(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_NO_ENGINE", "1")
    solution = write_course(tmp_path)
    (exercise,) = assign.main(root=tmp_path)
    sol = outputs_text(run_notebook(solution))
    assert "ERROR-OUTPUT" not in sol
    assert "✔ q1: passed 2/2 public checks" in sol and "✔ q2: passed 1/1 public checks" in sol
    assert "q3: needs engine" in sol  # COURSEKIT_NO_ENGINE=1
    assert "coursekit-check" in sol  # the HTML view was sent too
    assert_no_hidden(sol)  # hidden checks are registered in this kernel, yet never shown
    ex = outputs_text(run_notebook(exercise))
    assert "ERROR-OUTPUT" not in ex and "Traceback" not in ex
    assert "q1: not attempted" in ex and "0 of 3 questions pass their public checks" in ex
    assert_no_hidden(ex)


def test_in_a_kernel_unknown_question_is_two_lines_not_a_traceback(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from coursekit.exercises.checks import check\ncheck('q7')")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    out = run_notebook(path).cells[0].outputs
    text = "".join(o.get("text", "") for o in out)
    assert "coursekit: there is no question named 'q7'" in text and "What to do:" in text
    assert "Traceback" not in text and "File " not in text


# --------------------------------------------------------------------------- grading


@pytest.fixture
def course(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_NO_ENGINE", "1")
    solution = write_course(tmp_path)
    (exercise,) = assign.main(root=tmp_path)
    return solution, exercise


def submission(exercise, tmp_path, name, **sources):
    """The exercise with some cells' sources replaced; a markdown cell named becomes a code cell."""
    nb = nbformat.read(str(exercise), as_version=4)
    for cell_id, src in sources.items():
        cell_id = cell_id.replace("_", "-")
        for i, cell in enumerate(nb.cells):
            if cell.id == cell_id and cell.cell_type != "code":
                nb.cells[i] = nbformat.v4.new_code_cell(id=cell_id)
        set_source(nb, cell_id, src)
    path = tmp_path / "submissions" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_load_questions_private_registry(course, monkeypatch):
    monkeypatch.setattr(checks, "REGISTRY", Registry())
    qs = scoring.load_questions(course[0])
    assert list(qs) == ["q1", "q2", "q3"]
    assert [len(q.hidden) for q in qs.values()] == [1, 1, 1]
    assert qs["q1"].points == 2 and qs["q3"].needs_engine
    assert len(checks.REGISTRY) == 0


def test_solution_scores_full_marks(course):
    solution, _ = course
    r = inprocess.grade_notebook(solution, solution, engine_available=True)
    assert (r.status, r.score, r.max_score) == ("graded", 4, 4), str(r)
    assert all(g.status == "passed" for g in r.questions.values())
    assert r.seconds > 0


def test_untouched_exercise_scores_zero(course):
    solution, exercise = course
    r = inprocess.grade_notebook(exercise, solution, engine_available=True)
    assert (r.status, r.score) == ("graded", 0), str(r)
    assert [g.status for g in r.questions.values()] == ["not attempted"] * 3


def test_partial_answer_scores_partial(course, tmp_path):
    solution, exercise = course
    path = submission(exercise, tmp_path, "partial.ipynb",
                      q1_code="def shout(text):\n    return text.upper() + '!'",
                      q2_code="ports = [8080]")  # public check passes, hidden fails
    r = inprocess.grade_notebook(path, solution, engine_available=True)
    assert r.score == 2, str(r)
    q2 = r.questions["q2"]
    assert (q2.status, q2.public_passed, q2.hidden_passed) == ("failed", 1, 0)
    assert q2.failed_hidden == ["q2_exact_ports"]  # for the instructor
    assert "hidden checks: 0 of 1 passed" in q2.messages
    assert_no_hidden("\n".join(m for g in r.questions.values() for m in g.messages))


def test_raising_cells_are_graded_others_unaffected(course, tmp_path):
    solution, exercise = course
    path = submission(exercise, tmp_path, "raises.ipynb",
                      q1_code="def shout(text):\n    return text.upper() + 1",
                      q2_text="raise RuntimeError('a broken cell')",
                      q2_code="ports = [80, 443]\nprint(1 / 0)",
                      q3_code='dockerfile = "FROM python:3.12-slim"')
    path.parent.joinpath("helper.txt").write_text("cwd is the notebook's folder")
    nb = nbformat.read(str(path), as_version=4)
    set_source(nb, "setup", "from coursekit.exercises.checks import check\nopen('helper.txt').read()")
    nbformat.write(nb, str(path))
    r = inprocess.grade_notebook(path, solution, engine_available=True)
    assert r.status == "graded" and r.score == 2, str(r)
    q1 = r.questions["q1"]
    assert q1.status == "error" and "TypeError" in q1.messages[0] and "line 2" in q1.messages[0]
    assert r.questions["q2"].status == "passed" and r.questions["q3"].status == "passed"


def test_needs_engine_without_engine(course):
    solution, _ = course
    r = inprocess.grade_notebook(solution, solution, engine_available=False)
    assert r.score == 3 and r.questions["q3"].status == "needs engine" and not r.complete


def test_invalid_notebook_is_a_result_not_an_exception(course, tmp_path):
    solution, _ = course
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [')
    r = inprocess.grade_notebook(bad, solution)
    assert (r.status, r.score, r.max_score) == ("invalid notebook", 0, 4)
    assert str(bad) in r.message and "not valid JSON" in r.message
    assert set(r.questions) == {"q1", "q2", "q3"}


def test_cell_timeout_interrupts_and_grading_goes_on(course, tmp_path):
    solution, exercise = course
    path = submission(exercise, tmp_path, "slow.ipynb", q2_text="import time\ntime.sleep(60)",
                      q2_code="ports = [80, 443]")
    r = inprocess.grade_notebook(path, solution, timeout=3, engine_available=True)
    assert r.status == "graded" and r.questions["q2"].status == "passed", str(r)
    assert r.seconds < 30


def test_kernel_that_dies_is_graded_zero(course, tmp_path):
    solution, exercise = course
    path = submission(exercise, tmp_path, "exit.ipynb", q2_text="import os\nos._exit(3)")
    r = inprocess.grade_notebook(path, solution)
    assert (r.status, r.score) == ("kernel died", 0) and "died" in r.message


def test_score_parse_and_collect_without_a_kernel(course):
    qs = scoring.load_questions(course[0])
    ns = learner_code("def shout(text):\n    return text.upper() + '!'\nports = {1}\n")
    doc = checks.collect_answers([[q.name, q.answer] for q in qs.values()], namespace=ns)
    import json
    text = "noise\nCOURSEKIT-ANSWERS {}\n" + "COURSEKIT-ANSWERS " + json.dumps(doc) + "\n"
    answers = protocol.parse_answers(text)
    assert [a.status for a in answers.values()] == ["answered", "invalid", "not attempted"]
    r = scoring.score(qs, answers, engine_available=True)
    assert r.score == 2 and r.questions["q2"].status == "failed"
    assert protocol.parse_answers("nothing here") == {}
    assert protocol.parse_answers("COURSEKIT-ANSWERS {not json") == {}
    hostile = {"q1": {"status": "answered", "value": {"__class__": "x", "n": [1] * 10}},
               "q2": {"status": "pwned"}, "q3": "not even a dict"}
    r = scoring.score(qs, hostile, engine_available=True)
    assert [g.status for g in r.questions.values()] == ["failed", "error", "error"]


def test_collector_source_is_plain_python(course):
    qs = scoring.load_questions(course[0])
    src = protocol.collect_answers_source(qs)
    compile(src, "collector", "exec")
    assert "COURSEKIT-ANSWERS" in src and "shout(" in src
