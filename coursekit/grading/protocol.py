"""The contract between the grading host and a sandbox: what goes in, what comes out, what each status means.

Both sides import this module: the host (:mod:`coursekit.grading.local`, :mod:`coursekit.grading.swarm`)
and the worker inside the sandbox (:mod:`coursekit.grading.worker`). So it holds what they must
agree on, and nothing that needs the Docker engine:

* **the entry point**: the sandbox runs ``python3 -m`` :data:`WORKER_MODULE`;
* **the request** (:func:`coursekit.grading.inputs.build_request`): a JSON object with a ``nonce``,
  the ``cells`` to run (``{"source", "index", "kind"}``), the ``files`` beside the notebook
  (base64), each question's ``answers`` expression (``[name, expression]``), whether the sandbox
  has an ``engine`` (its gate's socket at :data:`GATE_SOCKET`) and the ``limits``:
  the submission's :class:`~coursekit.grading.limits.GradeLimits`, sent whole and rebuilt (and
  so validated again) inside by :func:`limits_of`: the worker's settings are that typed structure;
* **the report**: one line ``COURSEKIT-GRADE <nonce> <json>`` (:data:`RESULT_MARKER`) on the
  container's stdout, or posted to the work list with the nonce; the answers inside it were
  printed by the collector (:func:`collect_answers_source`) as ``COURSEKIT-ANSWERS <json>``
  (:data:`ANSWERS_MARKER`) and read back by :func:`parse_answers` (size-capped JSON, never pickle);
* **statuses**: of a cell in the report (:data:`CELL_STATUSES`), of a notebook graded in-process
  (:data:`NOTEBOOK_STATUSES`) and of a submission (:data:`STATUSES`).

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..exercises import checks as ck
from .limits import GradeLimits

#: ``python3 -m WORKER_MODULE``: PID 1 of every grading sandbox (``... kernel -f FILE``: its kernel).
WORKER_MODULE = "coursekit.grading.worker"
#: The worker's report line: ``COURSEKIT-GRADE <nonce> <json>``.
RESULT_MARKER = "COURSEKIT-GRADE"
#: The collector's line: ``COURSEKIT-ANSWERS <json>``.
ANSWERS_MARKER = "COURSEKIT-ANSWERS"
#: Largest answers line accepted (all questions together).
MAX_ANSWERS_LINE = 64 * ck.MAX_ANSWER_BYTES
#: Exit status of a work list's worker that ran the notebook but could not hand in its report.
EXIT_UNDELIVERED = 75
#: The environment every sandbox starts with (the worker then sets its kernel's own).
SANDBOX_ENV = {"HOME": "/tmp", "COURSEKIT_NO_ENGINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
#: Where a sandbox whose submission gets an engine finds it: its gate's socket (bind-mounted, read-only).
GATE_DIR = "/run/coursekit"
GATE_SOCKET = f"{GATE_DIR}/docker.sock"


#: What the grader tells a sandbox with a gate, passed on to the student's kernel: how the grading host's
#: Swarm reaches a service (``vip`` or ``dnsrr``; coursekit.orchestrate.swarm.ENDPOINT_MODE_ENV), which
#: the sandbox cannot ask its kernel itself.
PASSED_ENV = ("COURSEKIT_SWARM_ENDPOINT_MODE",)


def engine_env(engine: bool) -> dict[str, str]:
    """The sandbox's view of the Docker engine: its gate (``DOCKER_HOST``), or none at all."""
    return {"DOCKER_HOST": f"unix://{GATE_SOCKET}"} if engine else {"COURSEKIT_NO_ENGINE": "1"}

#: What happened to one cell, in the worker's report.
OK, ERROR, TIMED_OUT, HUNG, CRASHED, NOT_RUN = "ok", "error", "timed out", "hung", "crashed", "not run"
CELL_STATUSES = (OK, ERROR, TIMED_OUT, HUNG, CRASHED, NOT_RUN)

#: What happened to a notebook graded in one process (:func:`coursekit.grading.inprocess.grade_notebook`).
GRADED, INVALID_NOTEBOOK, KERNEL_DIED, NO_ANSWERS = "graded", "invalid notebook", "kernel died", "no answers"
NOTEBOOK_STATUSES = (GRADED, INVALID_NOTEBOOK, KERNEL_DIED, NO_ANSWERS)

#: What happened to a submission graded in a sandbox (``TIMED_OUT`` and ``CRASHED`` as for a cell).
TOO_BIG, NO_NOTEBOOK, OUT_OF_MEMORY, GRADER_ERROR = "too big", "no notebook", "out of memory", "grader error"
STATUSES = (GRADED, INVALID_NOTEBOOK, TOO_BIG, NO_NOTEBOOK, TIMED_OUT, OUT_OF_MEMORY, CRASHED, GRADER_ERROR)


def limits_of(request: Mapping[str, Any]) -> GradeLimits:
    """The request's limits as the typed structure the host sent (checked again on this side)."""
    return GradeLimits.from_dict(request["limits"])


def collect_answers_source(questions: Mapping[str, Any]) -> str:
    """Python source that, in the learner's kernel, prints ``COURSEKIT-ANSWERS <json>``.

    ``questions``: anything with ``.name`` and ``.answer`` (the answer expression) by name.
    """
    specs = json.dumps([[q.name, q.answer] for q in questions.values()])
    return ("def __coursekit_collect():\n"
            "    import json\n"
            "    from coursekit.exercises.checks import print_answers\n"
            f"    print_answers(json.loads({specs!r}), {ANSWERS_MARKER!r})\n"
            "__coursekit_collect()\n"
            "del __coursekit_collect\n")


def parse_answers(text: str) -> dict[str, ck.Answer]:
    """Answers from the collector's output (the last ``COURSEKIT-ANSWERS`` line); {} if none."""
    line = None
    for candidate in text.splitlines():
        if candidate.startswith(ANSWERS_MARKER + " "):
            line = candidate
    if line is None or len(line) > MAX_ANSWERS_LINE:
        return {}
    try:
        doc = json.loads(line[len(ANSWERS_MARKER) + 1:])
    except (ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("answers"), dict):
        return {}
    return {str(k): ck.Answer.from_json(v) for k, v in doc["answers"].items()}
