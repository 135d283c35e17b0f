"""nbgrader's side of ``bench/grading.py``: its own virtual environment, a real nbgrader course, its autograde.

* :func:`ensure_venv` creates (once) a separate environment with nbgrader, ipykernel and this coursekit
  (the student code imports it), under ``~/.cache/coursekit/bench/nbgrader-venv``. pip reads the
  machine's own configuration for where packages come from; nothing here names an index.
* :func:`source_notebook` turns the coursekit solution into an nbgrader *source* notebook: each answer
  cell (the same ``### BEGIN/END SOLUTION`` markers) becomes an nbgrader solution cell, each coursekit
  check cell an autograder test cell worth the question's points, whose asserts are the question's own
  public checks (visible) and hidden checks (between ``### BEGIN/END HIDDEN TESTS``), run on the answer
  expression's value after a JSON round trip, as coursekit's grader does.
* :func:`for_nbgrader` gives a student's notebook the nbgrader cell metadata its release would have had
  (the cells' sources are untouched: both graders get the same notebook).
* :func:`build_course`, :func:`autograde` and :func:`scores`: the course folder, ``nbgrader
  generate_assignment``, ``nbgrader autograde`` (serial, the student's code run as this user, no limits),
  and the scores read back through nbgrader's own Python API.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coursekit.exercises import assign, notebooks

ROOT = Path(__file__).resolve().parents[1]
VENV = Path.home() / ".cache" / "coursekit" / "bench" / "nbgrader-venv"
PACKAGES = ["nbgrader", "ipykernel"]
COURSE_ID = "coursekit-bench"
SCHEMA = 3

# --------------------------------------------------------------------------- the environment


def ensure_venv(path: Path = VENV, say=print) -> tuple[Path, float, bool]:
    """The environment's python, the seconds it took to make (now or when it was made), and whether it was
    made now."""
    marker = path / "coursekit-bench.json"
    want = {"packages": PACKAGES, "coursekit": str(ROOT), "python": sys.version.split()[0]}
    py = path / "bin" / "python"
    try:
        had = json.loads(marker.read_text())
        if {k: had.get(k) for k in want} == want and (path / "bin" / "nbgrader").exists():
            return py, float(had.get("seconds", 0)), False
    except (OSError, ValueError, TypeError):
        pass
    t0 = time.monotonic()
    if path.exists():
        shutil.rmtree(path)  # ours (an older or unfinished set-up), under the bench's own cache folder
    say(f"set-up: creating {path} (once; reused by later runs)")
    subprocess.run(["python3", "-m", "venv", str(path)], check=True)
    cmd = [str(py), "-m", "pip", "install", "--progress-bar", "off", *PACKAGES, "-e", str(ROOT)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-30:]
        if line.startswith(("Collecting nbgrader", "Successfully installed", "ERROR")):
            say(f"  pip: {line.rstrip()[:160]}")
    if proc.wait() != 0:
        raise RuntimeError("pip could not install nbgrader:\n" + "\n".join(tail))
    took = time.monotonic() - t0
    marker.write_text(json.dumps({**want, "seconds": round(took, 1)}))
    return py, took, True


def version(py: Path) -> str:
    return subprocess.run([str(py), "-c", "import nbgrader; print(nbgrader.__version__)"], check=True,
                          capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- the notebooks


def _question_call(tree: ast.Module) -> tuple[str, str, float]:
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                getattr(node.value.func, "id", "") == "question":
            call = node.value
            kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("answer", "points")}
            args = [ast.literal_eval(a) for a in call.args]
            return args[0], kw.get("answer", args[1] if len(args) > 1 else None), kw.get("points", 1)
    raise ValueError("a check cell without a top-level question(...) call")


def test_cell(check_source: str, where: str = "check cell") -> tuple[str, str, float]:
    """(question, nbgrader test-cell source, points) for a coursekit check cell (see the module's docstring)."""
    tree = ast.parse(check_source)
    name, answer, points = _question_call(tree)
    checks = {"public": [], "hidden": []}
    lines = check_source.split("\n")
    hidden_src = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for d in node.decorator_list:
            kind = getattr(d.func if isinstance(d, ast.Call) else d, "id", "")
            if kind in checks:
                checks[kind].append(node.name)
                if kind == "hidden":
                    start = min(x.lineno for x in node.decorator_list)
                    hidden_src.append("\n".join(lines[start - 1:node.end_lineno]))
    if not checks["public"] and not checks["hidden"]:
        raise ValueError(f"{where}: no @public or @hidden checks")
    visible = assign.strip_hidden_checks(check_source, where).rstrip()

    def run(names: list[str]) -> str:
        return f"for _check in ({', '.join(names)},):\n    _check(_json.loads(_answer))\n" if names else ""

    source = (f"{visible}\n\n\nimport json as _json\n_answer = _json.dumps({answer})\n{run(checks['public'])}"
              f"### BEGIN HIDDEN TESTS\n" + "\n\n\n".join(hidden_src) + f"\n\n\n{run(checks['hidden'])}"
              "### END HIDDEN TESTS")
    return name, source, points


def _meta(grade_id: str, *, solution: bool, points: float | None = None) -> dict:
    md = {"grade": points is not None, "grade_id": grade_id, "locked": not solution, "schema_version": SCHEMA,
          "solution": solution, "task": False}
    if points is not None:
        md["points"] = points
    return md


def source_notebook(solution_nb):
    """The nbgrader source version of a coursekit solution notebook (a new notebook)."""
    nb = copy.deepcopy(solution_nb)
    cells = []
    for i, cell in enumerate(nb.cells, 1):
        tags = notebooks.tags_of(cell)
        if assign.SOLUTION_ONLY_TAG in tags:
            continue
        src = notebooks.source_of(cell)
        if cell.cell_type == "code" and assign.CHECKS_TAG in tags:
            name, cell.source, points = test_cell(src, f"cell {i}")
            cell.metadata["nbgrader"] = _meta(name, solution=False, points=points)
        elif cell.cell_type == "code" and assign.BEGIN in src:
            cell.metadata["nbgrader"] = _meta(f"answer_{cell.id}", solution=True)
        cells.append(cell)
    nb.cells = cells
    return nb


def for_nbgrader(student_nb, source_nb):
    """A student's notebook with the nbgrader cell metadata of the same cells (matched by id)."""
    meta = {c.id: c.metadata["nbgrader"] for c in source_nb.cells if "nbgrader" in c.metadata}
    nb = copy.deepcopy(student_nb)
    for cell in nb.cells:
        if cell.get("id") in meta:
            cell.metadata["nbgrader"] = copy.deepcopy(meta[cell.id])
    return nb


# --------------------------------------------------------------------------- the course


CONFIG = """c = get_config()
c.CourseDirectory.course_id = {course!r}
c.CourseDirectory.root = {root!r}
c.Execute.timeout = 60
"""


def build_course(root: Path, assignment: str, solution_nb, submissions: Path, students: list[str]) -> None:
    """``root``: nbgrader_config.py, source/<a>/<a>.ipynb, submitted/<student>/<a>/<a>.ipynb (+ timestamp)."""
    src_nb = source_notebook(solution_nb)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(course=COURSE_ID, root=str(root)))
    notebooks.write(src_nb, root / "source" / assignment / f"{assignment}.ipynb")
    for student in students:
        nb = notebooks.read(submissions / student / f"{assignment}.ipynb")
        dest = root / "submitted" / student / assignment
        notebooks.write(for_nbgrader(nb, src_nb), dest / f"{assignment}.ipynb")
        (dest / "timestamp.txt").write_text("2025-01-01 12:00:00.000000 UTC")


def _env(py: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{py.parent}{os.pathsep}{env.get('PATH', '')}"
    env["COURSEKIT_NO_ENGINE"] = "1"  # as in coursekit's sandbox: the exercise needs no engine
    env.pop("VIRTUAL_ENV", None)
    return env


def nbgrader(py: Path, root: Path, *args: str, on_line=None) -> tuple[int, list[str]]:
    """Run ``nbgrader <args>`` in the course folder; each log line goes to ``on_line``."""
    proc = subprocess.Popen([str(py.parent / "nbgrader"), *args], cwd=root, env=_env(py), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if on_line:
            on_line(line.rstrip())
    return proc.wait(), lines


def autograde(py: Path, root: Path, assignment: str, total: int, every: int, say=print) -> tuple[int, list[str]]:
    """``nbgrader autograde`` of every submission, showing a line every ``every`` notebooks."""
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        m = re.search(r"Autograding .*submitted/([^/]+)/", line) or re.search(r"Autograding .*/([^/]+)/[^/]+/[^/]+$",
                                                                              line)
        if "Autograding" in line:
            done += 1
            if done % every == 0 or done == total:
                say(f"  [{done}/{total}] nbgrader: autograding {m.group(1) if m else ''}")
        elif "ERROR" in line or "Traceback" in line:
            say(f"  nbgrader: {line[:200]}")

    return nbgrader(py, root, "autograde", assignment, "--create", "--force", on_line=on_line)


READ_SCORES = """
import json, sys
from nbgrader.api import Gradebook, MissingEntry
out = {}
with Gradebook(sys.argv[1]) as gb:
    for student in gb.students:
        try:
            sub = gb.find_submission(sys.argv[2], student.id)
        except MissingEntry:
            continue
        grades = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
        out[student.id] = {"total": sub.score, "questions": grades}
print(json.dumps(out))
"""


def scores(py: Path, root: Path, assignment: str) -> dict:
    """student -> {"total", "questions": {question: points}}, from nbgrader's gradebook (its own API)."""
    out = subprocess.run([str(py), "-c", READ_SCORES, f"sqlite:///{root / 'gradebook.db'}", assignment],
                         env=_env(py), capture_output=True, text=True, check=True).stdout
    return json.loads(out)
