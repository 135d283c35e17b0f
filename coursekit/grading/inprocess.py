"""A submission graded in a kernel of this process: trusted code only (tests, benchmarks, instructors' checks).

:func:`grade_notebook` runs a notebook in its own Jupyter kernel with nbclient (cwd = the
notebook's folder, errors allowed, a per-cell timeout after which the cell is interrupted and
the rest still runs), then the collector (:func:`coursekit.grading.protocol.collect_answers_source`)
in that same kernel, and scores the answers with :func:`coursekit.grading.scoring.score`. Nothing
is sandboxed here: grade a class with ``coursekit grade`` (:mod:`coursekit.grading.classroom`).

A notebook that cannot be read gives a :class:`~coursekit.grading.scoring.GradeResult` with
status ``"invalid notebook"`` and zero, not an exception; so does a kernel that dies (status
``"kernel died"``).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..errors import NotebookError
from ..exercises import checks as ck
from ..exercises import notebooks
from .protocol import INVALID_NOTEBOOK, KERNEL_DIED, NO_ANSWERS, collect_answers_source, parse_answers
from .scoring import GradeResult, load_questions, score, zero_grades


def _stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def grade_notebook(nb_path: str | os.PathLike, solution_path: str | os.PathLike, *, timeout: int = 600,
                   kernel_name: str = "python3", engine_available: bool | None = None,
                   executed: list | None = None) -> GradeResult:
    """Execute a submission in a fresh kernel (cwd = its folder) and score it against the solution.

    ``timeout`` is per cell: a cell running longer is interrupted and the rest still runs.
    ``executed``: a list to which the executed notebook (with its outputs) is appended.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from nbformat.v4 import new_code_cell

    start = time.monotonic()
    questions = load_questions(solution_path)
    max_score = sum(q.points for q in questions.values())
    name = str(nb_path)

    def result(status: str, message: str, per_question_status: str) -> GradeResult:
        return GradeResult(status, 0, max_score, zero_grades(questions, per_question_status, message), name, message,
                           time.monotonic() - start)

    try:
        nb = notebooks.read(nb_path)
    except NotebookError as exc:
        return result(INVALID_NOTEBOOK, str(exc), INVALID_NOTEBOOK)
    notebooks.strip_outputs(nb)
    collector = new_code_cell(collect_answers_source(questions))
    collector.id = "coursekit-collect-answers"
    nb.cells = [c for c in nb.cells if c.get("id") != collector.id] + [collector]
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False, startup_timeout=120,
                            resources={"metadata": {"path": str(Path(nb_path).resolve().parent)}})
    try:
        client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log lines; cell output is kept
    except DeadKernelError:
        ran = [i for i, c in enumerate(nb.cells[:-1], 1) if c.get("cell_type") == "code" and c.get("outputs")]
        where = f" (last output from cell {ran[-1]})" if ran else ""
        return result(KERNEL_DIED, f"the notebook's kernel died while running{where}: a cell exited the process "
                                   "or ran out of memory", KERNEL_DIED)
    except (RuntimeError, TimeoutError) as exc:  # the kernel would not start or stopped answering
        return result(KERNEL_DIED, f"the notebook could not be run: {type(exc).__name__}: {exc}", KERNEL_DIED)
    if executed is not None:
        executed.append(nb)
    answers = parse_answers(_stdout_of(nb.cells[-1]))
    if not answers:
        errors = [o for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "error"]
        why = f" ({errors[0].get('ename')}: {errors[0].get('evalue')})" if errors else ""
        return result(NO_ANSWERS, f"no answers could be collected from the notebook{why}", ck.ERROR)
    graded = score(questions, answers, engine_available=engine_available)
    graded.notebook = name
    graded.seconds = time.monotonic() - start
    return graded
