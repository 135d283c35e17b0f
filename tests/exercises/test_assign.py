"""coursekit assign: student versions generated from solutions, and notebook file helpers."""
from __future__ import annotations

import json

import nbformat
import pytest
from fixtures.course_fixtures import SECRETS, set_source, solution_notebook, write_course

from coursekit.exercises import assign, notebooks
from coursekit.exercises.assign import SolutionFormatError, stub_solution_regions, strip_hidden_checks
from coursekit.errors import NotebookError


def cells_by_id(nb):
    return {c.id: c for c in nb.cells}


@pytest.fixture
def course(tmp_path):
    write_course(tmp_path)
    return tmp_path


@pytest.fixture
def exercise(course):
    (path,) = assign.main(root=course)
    return nbformat.read(str(path), as_version=4), path


# --------------------------------------------------------------------------- generated content


def test_writes_exercise_with_same_name(course):
    written = assign.main(root=course)
    assert written == [course / "exercises" / "ex-demo.ipynb"]
    assert written[0].is_file()


def test_solution_region_in_function_keeps_indentation(exercise):
    nb, _ = exercise
    assert cells_by_id(nb)["q1-code"].source == (
        'def shout(text):\n'
        '    """Return text upper-cased, with an exclamation mark."""\n'
        '    # YOUR CODE HERE\n'
        '    ...')


def test_stub_lines_replace_the_solution(exercise):
    nb, _ = exercise
    cells = cells_by_id(nb)
    assert cells["q2-code"].source == (
        "# The ports a web server listens on\n# YOUR CODE HERE\nports = ...\nprint(\"ports defined\")")
    assert cells["q3-code"].source == "# YOUR CODE HERE\n# a Dockerfile, as a str\ndockerfile = ..."


def test_hidden_checks_removed_public_kept_verbatim(exercise):
    nb, _ = exercise
    cells = cells_by_id(nb)
    q1 = cells["q1-checks"].source
    assert "@public(\"q1\", hint=\"Use `str.upper`\")\ndef q1_is_text(answer):" in q1
    assert "def q1_ends_with_bang(answer):" in q1
    assert "hidden(\"q1\")" not in q1 and "q1_secret_exact" not in q1
    assert "# the exact value" not in q1  # the comment above a hidden check goes with it
    assert not q1.endswith("\n\n") and q1.endswith("\"the result should end with '!'\"")
    # a hidden check in the middle: the rest is kept verbatim, no doubled blank line
    assert cells["q2-checks"].source == (
        'from coursekit.exercises.checks import question, public, hidden\n'
        'question("q2", answer="ports", prompt="Which ports?")\n'
        '\n'
        '@public("q2")\n'
        'def q2_is_list(answer):\n'
        '    "a list of port numbers"\n'
        '    assert isinstance(answer, list) and all(isinstance(p, int) for p in answer), '
        '"ports should be a list of ints"')


def test_check_cells_read_only_and_collapsed(exercise):
    nb, _ = exercise
    for cell in nb.cells:
        locked = (cell.metadata.get("editable"), cell.metadata.get("deletable"),
                  cell.metadata.get("jupyter", {}).get("source_hidden"))
        if "checks" in cell.metadata.get("tags", []):
            assert locked == (False, False, True), cell.id
        else:
            assert locked == (None, None, None), cell.id


def test_solution_only_cells_dropped_and_nothing_secret_left(exercise):
    nb, path = exercise
    assert "notes" not in cells_by_id(nb)
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text, secret


def test_outputs_cleared_metadata_and_note(exercise):
    nb, path = exercise
    assert notebooks.is_clean(nb) and notebooks.is_clean(path)
    assert all(c.execution_count is None and c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["coursekit"] == {"format": 1, "assignment": "ex-demo",
                                       "generated_from": "solutions/ex-demo.ipynb"}
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.id == assign.NOTE_ID
    assert "solutions/ex-demo.ipynb" in first.source and "do not edit" in first.source
    nbformat.validate(nb)


def test_deterministic_and_check_mode(course):
    (path,) = assign.main(root=course)
    first = path.read_bytes()
    assign.main(root=course)
    assert path.read_bytes() == first
    assert first.endswith(b"}\n")
    assert assign.main(root=course, check=True) == []

    path.write_bytes(first.replace(b"YOUR CODE HERE", b"YOUR CODE THERE"))
    assert assign.main(root=course, check=True) == [path]
    assert b"YOUR CODE THERE" in path.read_bytes()  # check mode writes nothing
    path.unlink()
    assert assign.main(root=course, check=True) == [path]
    assert not path.exists()


def test_check_mode_reports_exercises_whose_solution_is_gone(course):
    assign.main(root=course)
    (course / "solutions" / "ex-demo.ipynb").rename(course / "solutions" / "ex-renamed.ipynb")
    stale = assign.main(root=course, check=True)
    assert sorted(p.name for p in stale) == ["ex-demo.ipynb", "ex-renamed.ipynb"]


def test_solution_without_cell_ids_gives_stable_output(tmp_path):
    nb = solution_notebook()
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        del cell["id"]
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "old.ipynb").write_text(json.dumps(data))
    (path,) = assign.main(root=tmp_path)
    first = path.read_bytes()
    path.unlink()
    assign.main(root=tmp_path)
    assert path.read_bytes() == first
    nbformat.validate(nbformat.reads(first.decode(), as_version=4))


def test_sources_and_out_arguments(course):
    written = assign.main(root=course, sources=["solutions/ex-demo.ipynb"], out="build/ex")
    assert written == [course / "build" / "ex" / "ex-demo.ipynb"]
    assert assign.main(root=course, sources=["solutions/ex-demo.ipynb"], out="build/ex", check=True) == []


# --------------------------------------------------------------------------- regions, unit level


def test_multiline_stub_keeps_relative_indentation_and_trailing_newline():
    src = ("for x in xs:\n"
           "    if x:\n"
           "        ### BEGIN SOLUTION\n"
           "        ### STUB def helper(x):\n"
           "        ### STUB     return ...\n"
           "        ### STUB\n"
           "        ### STUB total = ...\n"
           "        total = x * 2\n"
           "        ### END SOLUTION\n"
           "print(total)\n"
           "### BEGIN SOLUTION\n"
           "secret = 1\n"
           "### END SOLUTION\n")
    assert stub_solution_regions(src, "nb") == (
        "for x in xs:\n"
        "    if x:\n"
        "        # YOUR CODE HERE\n"
        "        def helper(x):\n"
        "            return ...\n"
        "\n"
        "        total = ...\n"
        "print(total)\n"
        "# YOUR CODE HERE\n"
        "...\n")


def test_cell_without_markers_is_unchanged():
    src = "x = 1\n\n# a comment about solutions\nprint(x)"
    assert stub_solution_regions(src, "nb") == src


@pytest.mark.parametrize("source, line, words", [
    ("a = 1\n### BEGIN SOLUTION\nb = 2", 2, "never closed"),
    ("a = 1\n### END SOLUTION", 2, "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n  ### BEGIN SOLUTION\nx\n### END SOLUTION", 2, "cannot nest"),
    ("### STUB x = ...\nx = 1", 1, "outside a solution region"),
    ("## BEGIN SOLUTION\nx = 1\n## END SOLUTION", 1, "looks like a solution marker"),
    ("### BEGIN SOLUTION (q1)\nx = 1\n### END SOLUTION", 1, "looks like a solution marker"),
])
def test_bad_markers_name_notebook_cell_and_line(tmp_path, source, line, words):
    nb = set_source(solution_notebook(), "q1-code", source)  # the 5th cell
    write_course(tmp_path, "broken.ipynb", nb)
    with pytest.raises(SolutionFormatError) as info:
        assign.main(root=tmp_path)
    msg = str(info.value)
    assert f"solutions/broken.ipynb, cell 5, line {line}" in msg
    assert words in msg
    assert not (tmp_path / "exercises" / "broken.ipynb").exists()


def test_markers_in_markdown_cell_are_an_error(tmp_path):
    nb = set_source(solution_notebook(), "q1-text", "Answer:\n### BEGIN SOLUTION\n42\n### END SOLUTION")
    write_course(tmp_path, "md.ipynb", nb)
    with pytest.raises(SolutionFormatError, match=r"md\.ipynb, cell 4, line 2: solution markers only work in code"):
        assign.main(root=tmp_path)


def test_strip_hidden_checks_forms():
    src = ("import coursekit.exercises.checks as ck\n"
           "ck.question('q', answer='x')\n"
           "\n"
           "@ck.hidden('q')\n"
           "@some_other_decorator\n"
           "def secret_one(a):\n"
           "    assert a\n"
           "\n"
           "@ck.public('q')\n"
           "def visible(a):\n"
           "    assert a  # keep this comment\n"
           "\n"
           "\n"
           "@hidden(\n"
           "    'q',\n"
           ")\n"
           "async def secret_two(a):\n"
           "    pass\n")
    out = strip_hidden_checks(src, "nb")
    assert out == ("import coursekit.exercises.checks as ck\n"
                   "ck.question('q', answer='x')\n"
                   "\n"
                   "@ck.public('q')\n"
                   "def visible(a):\n"
                   "    assert a  # keep this comment\n")


def test_hidden_used_other_than_as_decorator_is_an_error():
    with pytest.raises(SolutionFormatError, match="other than as a decorator"):
        strip_hidden_checks("def f(a):\n    assert a\nhidden('q1')(f)\n", "nb, cell 3")


def test_check_cell_with_syntax_error_is_an_error():
    with pytest.raises(SolutionFormatError, match=r"nb, cell 3, line 1: a check cell must be plain Python"):
        strip_hidden_checks("%time x = 1\n", "nb, cell 3")


# --------------------------------------------------------------------------- broken notebooks


def test_not_json_names_file_position_and_fix(course):
    bad = course / "solutions" / "ex-demo.ipynb"
    bad.write_text(bad.read_text()[:300])
    with pytest.raises(NotebookError) as info:
        assign.main(root=course)
    msg = str(info.value)
    assert str(bad) in msg and "not valid JSON" in msg and "line " in msg and "column " in msg
    assert f"git checkout -- {bad}" in msg and "JupyterLab" in msg


@pytest.mark.parametrize("content, words", [
    ('{"cells": []}', "not a notebook: it has no 'nbformat', 'metadata'"),
    ("[1, 2]", "the top level is a list"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"source": "x"}]}', "cell 1 has no"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": 3}]}',
     "not a valid notebook"),
    ("", "is empty"),
])
def test_json_but_not_a_notebook(tmp_path, content, words):
    bad = tmp_path / "x.ipynb"
    bad.write_text(content)
    with pytest.raises(NotebookError) as info:
        notebooks.read(bad)
    assert words in str(info.value) and str(bad) in str(info.value)
    assert "git checkout --" in str(info.value) or "JupyterLab" in str(info.value)


def test_missing_notebook(tmp_path):
    with pytest.raises(NotebookError, match="there is no notebook at"):
        notebooks.read(tmp_path / "nope.ipynb")


# --------------------------------------------------------------------------- notebook helpers


def test_strip_outputs_and_is_clean(tmp_path):
    nb = solution_notebook()
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    nb.metadata["widgets"] = {"state": {}}
    problems = notebooks.dirty_cells(nb)
    assert "cell 5 has outputs" in problems and "cell 5 has an execution count" in problems
    assert any("execution" in p for p in problems) and any("widget" in p for p in problems)
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert not notebooks.is_clean(path)
    assert notebooks.clean_files([path]) == [path]
    assert notebooks.is_clean(path)
    assert notebooks.clean_files([path]) == []


def test_write_is_deterministic_and_skips_identical(tmp_path):
    nb = notebooks.strip_outputs(solution_notebook())
    path = tmp_path / "a.ipynb"
    assert notebooks.write(nb, path) is True
    assert notebooks.write(notebooks.read(path), path) is False
    assert path.read_bytes() == notebooks.dumps(nb).encode()
