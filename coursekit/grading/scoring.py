"""A solution's questions, and the scores of a submission's answers against every check.

1. :func:`load_questions` runs the solution's check cells (trusted code) in a fresh
   namespace with a private :class:`~coursekit.exercises.checks.Registry`: every question with its
   public *and* hidden checks. The kernel's global registry is not touched.
2. The submission's answers are collected where it ran (in a sandbox, :mod:`coursekit.grading.local`;
   or in a kernel of this process, :mod:`coursekit.grading.inprocess`) and come back as
   size-capped JSON (:func:`coursekit.grading.protocol.parse_answers`, never pickle).
3. :func:`score` runs public + hidden checks in the grader process, which the learner's code
   never touched. A question scores its points only if all its checks pass.

Statuses. :attr:`GradeResult.status` is one of :data:`coursekit.grading.protocol.NOTEBOOK_STATUSES`
(``"graded"``, ``"invalid notebook"``, ``"kernel died"``, ``"no answers"``).
:attr:`QuestionGrade.status`: one of :data:`coursekit.exercises.checks.STATUSES` (``passed``,
``failed``, ``not attempted``, ``error``, ``needs engine``), or the notebook's status when it
could not be graded at all. A broken *solution* raises: that is the instructor's to fix.

Questions with ``needs_engine=True`` are scored only where an engine answers
(``engine_available``; not given: this machine's engine is asked); elsewhere their status is
``"needs engine"`` with zero points and :attr:`GradeResult.complete` is False.

Check cells must be self-contained (import what they use): in the grader they run
without the solution's other cells. A ``check(...)`` call inside a check cell does
nothing while loading.
"""
from __future__ import annotations

import html
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..errors import CoursekitError, GradingError
from ..exercises import checks as ck
from ..dockerfile import tryout
from ..exercises import notebooks
from .protocol import GRADED

#: Tag of the check cells.
CHECKS_TAG = "checks"


# --------------------------------------------------------------------------- questions


def load_questions(solution_path: str | os.PathLike) -> dict[str, ck.Question]:
    """Run the check cells of a solution notebook in a private registry; questions by name."""
    nb = notebooks.read(solution_path)
    registry = ck.Registry()
    namespace: dict[str, Any] = {"__name__": "coursekit_checks", "__builtins__": __builtins__}
    with ck.collecting(registry):
        for index, cell in enumerate(nb.cells, 1):
            if cell.cell_type != "code" or CHECKS_TAG not in notebooks.tags_of(cell):
                continue
            source = notebooks.source_of(cell)
            where = f"{solution_path}, cell {index}"
            try:
                code = compile(_plain_python(source), f"<{where}>", "exec")
                exec(code, namespace)  # noqa: S102 - the instructor's trusted check cells
            except CoursekitError as exc:
                raise GradingError(f"the check cell {where} failed: {exc.problem}", exc.fix) from None
            except Exception as exc:  # noqa: BLE001
                raise GradingError(f"the check cell {where} failed: {type(exc).__name__}: {exc}",
                                   "run the solution notebook and fix that cell") from exc
    questions = dict(registry.questions)
    if not questions:
        raise GradingError(f"{solution_path} defines no questions (no code cell tagged '{CHECKS_TAG}' calls "
                           "question(...))", "add a check cell: see coursekit.exercises.checks")
    for q in questions.values():
        if not q.checks:
            raise GradingError(f"question {q.name!r} in {solution_path} has no checks, so any answer would pass",
                               "add at least one @public or @hidden check")
    return questions


def _plain_python(source: str) -> str:
    """Check cells are plain Python; IPython syntax (``%magic``, ``!cmd``) is translated if present."""
    if not any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return source
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover
        return source
    return TransformerManager().transform_cell(source)


@dataclass
class QuestionGrade:
    """One question's grade. ``messages`` and ``hints`` (of failed public checks) are for the
    learner (no hidden check names); ``failed_hidden`` names failed hidden checks, for the
    instructor only."""

    name: str
    status: str
    points: float
    max_points: float
    public_passed: int = 0
    public_total: int = 0
    hidden_passed: int = 0
    hidden_total: int = 0
    messages: list[str] = field(default_factory=list)
    failed_hidden: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # hints of the failed public checks (for feedback)


@dataclass
class GradeResult:
    """A notebook's grade: total, per-question grades, and what happened."""

    status: str
    score: float
    max_score: float
    questions: dict[str, QuestionGrade] = field(default_factory=dict)
    notebook: str = ""
    message: str = ""
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """False when some question still waits for an engine."""
        return not any(g.status == ck.NEEDS_ENGINE for g in self.questions.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["complete"] = self.complete
        return d

    def __str__(self) -> str:
        head = f"{self.notebook or 'notebook'}: {self.score:g}/{self.max_score:g} ({self.status})"
        lines = [head] + ([f"  {self.message}"] if self.message else [])
        for g in self.questions.values():
            lines.append(f"  {g.name}: {g.points:g}/{g.max_points:g} {g.status}")
            lines += [f"    {m}" for m in g.messages]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(g.name)}</td><td>{g.points:g}/{g.max_points:g}</td>"
                       f"<td>{html.escape(g.status)}</td><td>{'<br>'.join(html.escape(m) for m in g.messages)}</td></tr>"
                       for g in self.questions.values())
        msg = f"<p>{html.escape(self.message)}</p>" if self.message else ""
        return (f"<div><b>{html.escape(self.notebook or 'notebook')}: {self.score:g}/{self.max_score:g}</b> "
                f"({html.escape(self.status)}){msg}<table><tr><th>question</th><th>points</th><th>status</th>"
                f"<th>feedback</th></tr>{rows}</table></div>")


def zero_grades(questions: Mapping[str, ck.Question], status: str, message: str) -> dict[str, QuestionGrade]:
    return {q.name: QuestionGrade(q.name, status, 0, q.points, messages=[message]) for q in questions.values()}


def score(questions: Mapping[str, ck.Question], answers: Mapping[str, Any], *,
          engine_available: bool | None = None) -> GradeResult:
    """Run every check (public and hidden) on the answers; ``answers`` maps names to
    :class:`~coursekit.exercises.checks.Answer` or to their JSON form (``{"status": ..., "value": ...}``)."""
    grades: dict[str, QuestionGrade] = {}
    for q in questions.values():
        raw = answers.get(q.name)
        if raw is None:
            grades[q.name] = QuestionGrade(q.name, ck.ERROR, 0, q.points,
                                           messages=["no answer reached the grader for this question"])
            continue
        ans = raw if isinstance(raw, ck.Answer) else ck.Answer.from_json(raw)
        if ans.status == ck.ANSWERED:  # re-validate: the answer crossed a trust boundary
            ans = ck.Answer.from_json(ans.to_json())
        g = QuestionGrade(q.name, ck.FAILED, 0, q.points,
                          public_total=len(q.public), hidden_total=len(q.hidden))
        grades[q.name] = g
        if ans.status == ck.INVALID:
            g.messages.append(ans.message)
            continue
        if ans.status != ck.ANSWERED:
            g.status = ans.status
            g.messages.append(ans.message)
            continue
        if q.needs_engine:
            if engine_available is None:
                from ..docker import engine

                engine_available = engine.available()
            if not engine_available:
                g.status = ck.NEEDS_ENGINE
                g.messages.append("answer collected; its checks need a Docker engine, which the grader does not "
                                  "have: grade again where one runs")
                continue
        with tryout.graded():  # a Dockerfile answer's checks build it without a network
            public = ck.run_checks(q.public, ans.value)
            hidden = ck.run_checks(q.hidden, ans.value)
        g.public_passed = sum(o.ok for o in public)
        g.hidden_passed = sum(o.ok for o in hidden)
        g.failed_hidden = [o.check.name for o in hidden if not o.ok]
        g.hints = list(dict.fromkeys(o.check.hint for o in public if not o.ok and o.check.hint))
        g.messages += [f"✔ {o.check.label}" if o.ok else f"✘ {o.message}" for o in public]
        if hidden:
            g.messages.append(f"hidden checks: {g.hidden_passed} of {len(hidden)} passed")
        if all(o.ok for o in public + hidden):
            g.status, g.points = ck.PASSED, q.points
    total = sum(g.points for g in grades.values())
    return GradeResult(GRADED, total, sum(q.points for q in questions.values()), grades)
