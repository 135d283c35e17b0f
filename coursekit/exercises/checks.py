"""Exercise questions, their checks, and ``check("q1")``: immediate feedback in a notebook.

An exercise's *check cell* (a code cell tagged ``checks`` in ``solutions/``) declares a
question and its checks::

    from coursekit.exercises.checks import question, public, hidden
    question("q1", answer="hostname_of('coursekit/busybox:v1')", points=2, needs_engine=True,
             prompt="Return the hostname a container sees")

    @public("q1", hint="Run `hostname` inside the container and decode the bytes")
    def q1_is_text(answer):
        "the answer is a string"
        assert isinstance(answer, str), "hostname_of should return a str"

    @hidden("q1")
    def q1_is_container_id(answer):
        assert len(answer) == 12

* ``answer`` is a Python *expression*, evaluated in the learner's namespace (the IPython
  ``user_ns``; ``__main__`` outside IPython). Its value must be plain JSON data (``None``,
  ``bool``, ``int``, ``float``, ``str``, lists/tuples, dicts with ``str`` keys; tuples
  arrive as lists), at most :data:`MAX_ANSWER_BYTES` once encoded. Checks receive the
  JSON-decoded value, each its own copy, exactly as the grader will.
* A check passes by returning and fails by raising ``AssertionError``; the message is the
  feedback. Any other exception counts as a failure ("the check could not run on your
  answer"). The check's docstring (first line), else its function name, labels it.
* ``@public`` checks run in the learner's kernel on ``check("q1")``; ``@hidden`` checks run
  only when grading. ``coursekit assign`` deletes hidden checks from the student version,
  and ``check()`` never runs, names or shows them.
* Re-running a check cell replaces the question and its checks (``question()`` clears the
  question's checks; a check re-registered under the same function name replaces the old).
  Define the question before its checks (the same cell is simplest).

``check("q1")`` evaluates the answer and returns a :class:`CheckResult` whose status is one
of :data:`STATUSES`:

===============  ==========================================================================
passed           every public check passed (hidden ones are still to come when graded)
failed           a public check failed (its message, then the hint), or the answer is not
                 plain JSON data / too big
not attempted    the expression raised ``NameError`` at its top level (the function or
                 variable does not exist yet), ``NotImplementedError``, or is ``...``/``None``
                 (or still contains ``...``, or is a list/dict of nothing but None: the
                 calls of a function whose body is still the stub)
error            the learner's code raised: the exception type, message and their line; no
                 traceback (a ``NameError`` *inside* their function is an error, a typo)
needs engine     ``needs_engine=True`` and no Docker engine here (or the answer itself raised
                 :class:`~coursekit.errors.EngineUnavailable`): checked where an engine runs
===============  ==========================================================================

``check()`` without a name checks every question, in the order they were defined.

Grading (:mod:`coursekit.grading`) reuses :func:`evaluate` and :func:`run_checks`; answers
cross from the learner's kernel to the grader as JSON only (:func:`print_answers`).

Lessons: every exercise notebook (introduced in ``00-welcome``, "how checking works").
"""
from __future__ import annotations

import contextlib
import html
import io
import json
import math
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import CheckError, CoursekitError, EngineUnavailable, install_notebook_handler
from ..ui.notebook import html_text
from ..ui.palette import BAD, GOOD, MUTED

#: Largest answer, in bytes of JSON (UTF-8), that ``check()`` and the grader accept.
MAX_ANSWER_BYTES = 1_000_000
#: Deepest nesting of lists/dicts accepted in an answer.
MAX_ANSWER_DEPTH = 64

PASSED, FAILED, NOT_ATTEMPTED, ERROR, NEEDS_ENGINE = "passed", "failed", "not attempted", "error", "needs engine"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED, ERROR, NEEDS_ENGINE)

#: Statuses of an :class:`Answer` (what came out of evaluating the expression).
ANSWERED, INVALID = "answered", "invalid"
ANSWER_STATUSES = (ANSWERED, NOT_ATTEMPTED, ERROR, INVALID, NEEDS_ENGINE)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


# --------------------------------------------------------------------------- questions and checks


@dataclass
class Check:
    """One check function of a question."""

    question: str
    name: str
    func: Callable[[Any], Any]
    hidden: bool = False
    hint: str = ""

    @property
    def label(self) -> str:
        """What the learner reads next to ✔/✘: the docstring's first line, else the name."""
        doc = (getattr(self.func, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else self.name


@dataclass
class Question:
    """A graded question: how to get the answer, what it is worth, and its checks."""

    name: str
    answer: str
    points: float = 1
    needs_engine: bool = False
    prompt: str = ""
    checks: list[Check] = field(default_factory=list)
    #: What else an answer that drives Docker needs, beyond containers, images, builds, volumes, networks and
    #: published ports: "registry", "swarm", "aws" (its containers reach the AWS sandbox). The class grader
    #: gives a submission an engine only when it serves all of these (coursekit.grading.gate).
    needs: tuple[str, ...] = ()

    @property
    def public(self) -> list[Check]:
        return [c for c in self.checks if not c.hidden]

    @property
    def hidden(self) -> list[Check]:
        return [c for c in self.checks if c.hidden]

    def __repr__(self) -> str:  # never lists hidden checks by name
        return (f"Question({self.name!r}, answer={self.answer!r}, points={self.points}, "
                f"public={len(self.public)}, hidden={len(self.hidden)})")


class Registry:
    """Questions by name, in definition order. The notebook kernel uses :data:`REGISTRY`;
    the grader loads each solution into a private one (see :func:`collecting`)."""

    def __init__(self) -> None:
        self.questions: dict[str, Question] = {}

    def __len__(self) -> int:
        return len(self.questions)

    def __contains__(self, name: object) -> bool:
        return name in self.questions

    def question(self, name: str, answer: str, points: float = 1, *, needs_engine: bool = False,
                 prompt: str = "", needs: tuple[str, ...] | list[str] = ()) -> Question:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise CheckError(f"a question name must be a short text like 'q1', not {name!r}",
                             "write question('q1', answer='...')")
        if not isinstance(answer, str) or not answer.strip():
            raise CheckError(f"question {name!r}: answer must be a Python expression in a string, "
                             f"not {answer!r}", "for example answer=\"hostname_of('coursekit/busybox:v1')\"")
        try:
            compile(answer.strip(), f"<answer to {name}>", "eval")
        except SyntaxError as exc:
            raise CheckError(f"question {name!r}: answer={answer!r} is not a Python expression ({exc.msg})",
                             "give an expression such as a variable name or a function call, "
                             "not a statement") from None
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
            raise CheckError(f"question {name!r}: points must be a positive number, not {points!r}")
        if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
            raise CheckError(f"question {name!r}: needs={needs!r} is a tuple of names", 'e.g. needs=("swarm",)')
        q = Question(name, answer.strip(), points, bool(needs_engine), str(prompt or ""), needs=tuple(needs))
        self.questions[name] = q  # re-running the cell replaces, keeping the original order
        return q

    def add_check(self, question: str, func: Callable, *, hidden: bool, hint: str = "") -> Check:
        kind = "hidden" if hidden else "public"
        if callable(question) and not isinstance(question, str):
            raise CheckError(f"@{kind} needs the question's name", f"write @{kind}(\"q1\") above the function")
        q = self.questions.get(question)
        if q is None:
            raise CheckError(f"@{kind}({question!r}) refers to a question that is not defined",
                             f"call question({question!r}, answer=...) before its checks, in the same cell")
        if not callable(func):
            raise CheckError(f"@{kind}({question!r}) must decorate a function, not {func!r}")
        name = getattr(func, "__name__", "check")
        chk = Check(question, name, func, hidden, str(hint or ""))
        q.checks = [c for c in q.checks if c.name != name] + [chk]
        return chk

    def get(self, name: str) -> Question:
        if name in self.questions:
            return self.questions[name]
        known = ", ".join(self.questions) or "none yet"
        raise CheckError(f"there is no question named {name!r} (questions known so far: {known})",
                         f"run the cell that defines its checks first (the collapsed cell tagged 'checks' "
                         f"just below the exercise), then run check({name!r}) again; check the spelling")

    def check(self, name: str | None = None, *, namespace: dict | None = None,
              engine_available: bool | None = None) -> "CheckResult | CheckResults":
        """``check()`` against this registry, evaluating answers in ``namespace``."""
        ns = _user_namespace() if namespace is None else namespace
        if name is None:
            if not self.questions:
                raise CheckError("no questions are defined yet",
                                 "run the exercise's cells from the top (Run > Run All Cells), then check again")
            return CheckResults(check_question(q, ns, engine_available=engine_available)
                                for q in self.questions.values())
        if not isinstance(name, str):
            raise CheckError(f"check() takes a question's name, like check('q1'), not {name!r}")
        return check_question(self.get(name), ns, engine_available=engine_available)


#: The registry of the running kernel.
REGISTRY = Registry()
_active: list[Registry] = []


def current_registry() -> Registry:
    return _active[-1] if _active else REGISTRY


@contextlib.contextmanager
def collecting(registry: Registry) -> Iterator[Registry]:
    """Make ``question``/``public``/``hidden`` register into ``registry`` (the grader's loader)."""
    _active.append(registry)
    try:
        yield registry
    finally:
        _active.remove(registry)


def question(name: str, answer: str, points: float = 1, *, needs_engine: bool = False, prompt: str = "",
             needs: tuple[str, ...] | list[str] = ()) -> Question:
    """Declare (or re-declare) a question: its answer expression, points and prompt."""
    return current_registry().question(name, answer, points, needs_engine=needs_engine, prompt=prompt, needs=needs)


def public(question: str, hint: str = ""):
    """Decorator: a check the learner runs with ``check(question)``; ``hint`` is shown when it fails."""
    if callable(question) and not isinstance(question, str):
        current_registry().add_check(question, question, hidden=False)  # raises: name missing

    def deco(func):
        current_registry().add_check(question, func, hidden=False, hint=hint)
        return func
    return deco


def hidden(question: str):
    """Decorator: a check run only when grading (removed from the student version)."""
    if callable(question) and not isinstance(question, str):
        current_registry().add_check(question, question, hidden=True)  # raises: name missing

    def deco(func):
        current_registry().add_check(question, func, hidden=True)
        return func
    return deco


# --------------------------------------------------------------------------- answers


@dataclass
class Answer:
    """What evaluating an answer expression gave: the JSON value, or why there is none."""

    status: str
    value: Any = None
    message: str = ""

    def to_json(self) -> dict:
        d: dict = {"status": self.status}
        if self.status == ANSWERED:
            d["value"] = self.value
        if self.message:
            d["message"] = self.message
        return d

    @classmethod
    def from_json(cls, data: Any) -> "Answer":
        """Validate one answer as received from a kernel (untrusted)."""
        if not isinstance(data, dict) or data.get("status") not in ANSWER_STATUSES:
            return cls(ERROR, message="the grader received a malformed answer")
        msg = data.get("message", "")
        msg = msg[:2000] if isinstance(msg, str) else ""
        if data["status"] != ANSWERED:
            return cls(data["status"], message=msg)
        value = data.get("value")
        try:
            text = encode(value)
        except _NotJSON as exc:
            return cls(INVALID, message=str(exc))
        return cls(ANSWERED, json.loads(text), msg)


class _NotJSON(Exception):
    pass


class _Placeholder(Exception):
    pass


def _only_nones(value: Any, depth: int = 0) -> bool:
    """A list or dict of nothing but None: e.g. several calls of a still-stubbed function."""
    if depth > MAX_ANSWER_DEPTH:  # deeper (or circular) answers are judged by encode()
        return False
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return False
    return bool(items) and all(v is None or _only_nones(v, depth + 1) for v in items)


def _walk(value: Any, path: str, depth: int, budget: list[int]) -> None:
    where = "the answer" if path == "answer" else f"`{path}`"
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotJSON(f"the answer is too big (more than {MAX_ANSWER_BYTES:,} bytes as JSON)")
    if value is Ellipsis:
        raise _Placeholder(where)
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON(f"{where} is {value!r}, which JSON cannot carry: use a finite number or None")
        return
    if depth >= MAX_ANSWER_DEPTH:
        raise _NotJSON(f"the answer is nested more than {MAX_ANSWER_DEPTH} levels deep")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1, budget)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise _NotJSON(f"{where} has a key {k!r} of type {type(k).__name__}; "
                               "answer dicts need str keys (JSON has no others)")
            _walk(item, f"{path}[{k!r}]", depth + 1, budget)
        return
    kind = f"{type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")
    tip = {"bytes": "decode it first, e.g. value.decode()", "set": "use sorted(...) to make a list",
           "frozenset": "use sorted(...) to make a list"}.get(kind, "convert it to str, int, float, bool, None, "
                                                                   "a list or a dict (e.g. int(x), str(x), x.tolist())")
    raise _NotJSON(f"{where} is a {kind}, not plain data: {tip}")


def encode(value: Any) -> str:
    """``value`` as JSON text, or :class:`_NotJSON`/:class:`_Placeholder` saying why not."""
    _walk(value, "answer", 0, [MAX_ANSWER_BYTES])
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise _NotJSON(f"the answer cannot be written as JSON ({exc})") from None
    size = len(text.encode("utf-8"))
    if size > MAX_ANSWER_BYTES:
        raise _NotJSON(f"the answer is too big: {size:,} bytes as JSON, the limit is {MAX_ANSWER_BYTES:,}")
    return text


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # all of coursekit
_LIB_DIRS = tuple({os.path.abspath(p) for k in ("stdlib", "platstdlib", "purelib", "platlib")
                   if (p := sysconfig.get_paths().get(k))})


def _is_learner_frame(filename: str) -> bool:
    if not filename or filename.startswith("<answer to ") or filename.startswith("<frozen "):
        return False
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    return not (path.startswith(_PKG_DIR + os.sep) or path.startswith(_LIB_DIRS))


def _frames_after_answer(tb) -> list:
    frames, seen_answer = [], False
    while tb is not None:
        if seen_answer:
            frames.append(tb)
        elif tb.tb_frame.f_code.co_filename.startswith("<answer to "):
            seen_answer = True
        tb = tb.tb_next
    return frames


def _where(tb) -> str:
    """`` (in f, line 3: `return x[0]`)`` for the learner's deepest frame, or ''."""
    import linecache

    mine = [t for t in _frames_after_answer(tb) if _is_learner_frame(t.tb_frame.f_code.co_filename)]
    if not mine:
        return ""
    t = mine[-1]
    code = t.tb_frame.f_code
    line = linecache.getline(code.co_filename, t.tb_lineno).strip()
    func = "" if code.co_name == "<module>" else f"in {code.co_name}, "
    return f" ({func}line {t.tb_lineno}" + (f": `{line}`" if line else "") + ")"


def evaluate(name: str, expr: str, namespace: dict) -> Answer:
    """Evaluate an answer expression in ``namespace`` and classify the outcome (never raises,
    except ``KeyboardInterrupt``)."""
    try:
        code = compile(expr, f"<answer to {name}>", "eval")
    except SyntaxError as exc:  # only if a question was built by hand
        return Answer(ERROR, message=f"the answer expression {expr!r} is not valid Python ({exc.msg})")
    try:
        value = eval(code, namespace)  # noqa: S307 - the learner's own namespace, in their own kernel
    except KeyboardInterrupt:
        raise
    except EngineUnavailable as exc:
        return Answer(NEEDS_ENGINE, message=f"`{expr}` needs a Docker engine: {exc.problem}")
    except NotImplementedError:
        return Answer(NOT_ATTEMPTED, message=f"`{expr}` is not implemented yet: write your code in place "
                                             "of the stub, run that cell, then check again")
    except NameError as exc:
        if not _frames_after_answer(exc.__traceback__):
            missing = getattr(exc, "name", None)
            what = f"`{missing}` is not defined yet" if missing else str(exc)
            return Answer(NOT_ATTEMPTED, message=f"{what}: write it (or run the cell where you wrote it), "
                                                 "then check again")
        return Answer(ERROR, message=f"your code raised NameError: {exc}{_where(exc.__traceback__)}")
    except CoursekitError as exc:
        return Answer(ERROR, message=f"coursekit stopped your code: {exc.problem}{_where(exc.__traceback__)}"
                                     + (f". What to do: {exc.fix}" if exc.fix else ""))
    except BaseException as exc:  # noqa: BLE001 - anything the learner's code raises is feedback
        text = str(exc)
        return Answer(ERROR, message=f"your code raised {type(exc).__name__}{': ' + text if text else ''}"
                                     f"{_where(exc.__traceback__)}")
    if value is None or value is Ellipsis or _only_nones(value):
        if value is Ellipsis:
            return Answer(NOT_ATTEMPTED, message=f"`{expr}` is still `...`: replace it with your answer, run the "
                                                 "cell, then check again")
        return Answer(NOT_ATTEMPTED, message=f"`{expr}` gave None: nothing is returned yet (write your code where "
                                             "it says # YOUR CODE HERE, run the cell, then check again)")
    try:
        text = encode(value)
    except _Placeholder as exc:
        return Answer(NOT_ATTEMPTED, message=f"{exc} is still `...`: fill in every placeholder, run the cell, "
                                             "then check again")
    except _NotJSON as exc:
        return Answer(INVALID, message=str(exc))
    except RecursionError:
        return Answer(INVALID, message="the answer contains itself (a circular reference)")
    return Answer(ANSWERED, json.loads(text))


# --------------------------------------------------------------------------- running checks


@dataclass
class CheckOutcome:
    check: Check
    ok: bool
    message: str = ""


def run_checks(checks: list[Check], value: Any) -> list[CheckOutcome]:
    """Run each check on its own copy of the (JSON) answer."""
    text = json.dumps(value)
    out = []
    for chk in checks:
        try:
            chk.func(json.loads(text))
        except KeyboardInterrupt:
            raise
        except AssertionError as exc:
            out.append(CheckOutcome(chk, False, str(exc) or f"{chk.label}: not satisfied"))
        except BaseException as exc:  # noqa: BLE001 - a check that cannot run on this answer fails
            out.append(CheckOutcome(chk, False, f"{chk.label}: the check could not run on your answer "
                                                f"({type(exc).__name__}: {exc})"))
        else:
            out.append(CheckOutcome(chk, True))
    return out


#: Whether a Docker engine answers here, as whoever runs the checks says (:func:`set_engine_probe`):
#: exercises never import the engine themselves, since they also run inside the grading sandbox.
_engine_probe: Callable[[], bool] | None = None


def set_engine_probe(probe: Callable[[], bool] | None) -> None:
    """Tell the checks how to find out whether a Docker engine answers (``None``: it does not).

    The lesson runtime sets it (:func:`coursekit.lesson.steps.start`, and ``ck.check``); the
    grader passes ``engine_available`` instead.
    """
    global _engine_probe
    _engine_probe = probe


def engine_is_available() -> bool:
    """What the probe says; no probe, or any doubt, means no engine."""
    if _engine_probe is None:
        return False
    try:
        return bool(_engine_probe())
    except Exception:  # noqa: BLE001 - any doubt means no engine
        return False


NEEDS_ENGINE_TEXT = ("its checks need a Docker engine and there is none here, so it will be checked where one runs: "
                     "when your work is graded, or on a machine with Docker (see `coursekit doctor`)")


@dataclass
class CheckResult:
    """The outcome of ``check("q")``: shows as a ✔/✘ list in Jupyter."""

    question: str
    status: str
    passed: int = 0
    total: int = 0
    messages: list[str] = field(default_factory=list)
    hint: str = ""
    prompt: str = ""
    items: list[tuple[bool, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.status == PASSED

    def _headline(self) -> str:
        if self.status == PASSED:
            if not self.total:
                return "answer recorded (no public checks: it is checked when graded)"
            return f"passed {self.passed}/{self.total} public checks"
        if self.status == FAILED:
            return f"failed ({self.passed}/{self.total} public checks passed)" if self.total else "failed"
        return self.status

    def __repr__(self) -> str:
        icon = "✔" if self.status == PASSED else ("✘" if self.status in (FAILED, ERROR) else "…")
        lines = [f"{icon} {self.question}: {self._headline()}"]
        lines += [f"  {'✔' if ok else '✘'} {text}" for ok, text in self.items]
        lines += [f"  {m}" for m in self.messages]
        if self.hint and self.status != PASSED:
            lines.append(f"  Hint: {self.hint}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        color = {PASSED: GOOD, FAILED: BAD, ERROR: BAD}.get(self.status, MUTED)
        icon = "✔" if self.status == PASSED else ("✘" if self.status in (FAILED, ERROR) else "…")
        prompt = f' <span style="color:{MUTED}">{html_text(self.prompt, quote=False)}</span>' if self.prompt else ""
        parts = [f'<div class="coursekit-check coursekit-{self.status.replace(" ", "-")}" '
                 f'style="border-left:4px solid {color};padding:2px 10px;margin:4px 0">',
                 f'<div><b style="color:{color}">{icon} {html.escape(self.question)}</b>{prompt}: '
                 f'{html.escape(self._headline())}</div>']
        if self.items or self.messages:
            parts.append('<ul style="list-style:none;margin:2px 0;padding-left:1em">')
            for ok, text in self.items:
                c = GOOD if ok else BAD
                parts.append(f'<li><span style="color:{c}">{"✔" if ok else "✘"}</span> {html_text(text, quote=False)}</li>')
            parts += [f"<li>{html_text(m, quote=False)}</li>" for m in self.messages]
            parts.append("</ul>")
        if self.hint and self.status != PASSED:
            parts.append(f"<div><b>Hint:</b> {html_text(self.hint, quote=False)}</div>")
        parts.append("</div>")
        return "".join(parts)


class CheckResults(list):
    """``check()`` with no name: one :class:`CheckResult` per question."""

    def __init__(self, results=()):
        super().__init__(results)

    def _summary(self) -> str:
        ok = sum(1 for r in self if r.status == PASSED)
        return f"{ok} of {len(self)} questions pass their public checks"

    def __repr__(self) -> str:
        return "\n".join([self._summary()] + [repr(r) for r in self])

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return f"<div><b>{html.escape(self._summary())}</b></div>" + "".join(r._repr_html_() for r in self)


def check_question(q: Question, namespace: dict, *, engine_available: bool | None = None) -> CheckResult:
    """Evaluate ``q``'s answer in ``namespace`` and run its public checks."""
    ans = evaluate(q.name, q.answer, namespace)
    base = dict(question=q.name, prompt=q.prompt)
    if ans.status == NEEDS_ENGINE:
        return CheckResult(status=NEEDS_ENGINE, messages=[ans.message, f"This question: {NEEDS_ENGINE_TEXT}."],
                           **base)
    if ans.status == NOT_ATTEMPTED:
        return CheckResult(status=NOT_ATTEMPTED, messages=[ans.message], **base)
    if ans.status == ERROR:
        return CheckResult(status=ERROR, messages=[ans.message], **base)
    if ans.status == INVALID:
        return CheckResult(status=FAILED, messages=[ans.message], **base)
    if q.needs_engine:
        if engine_available is None:
            engine_available = engine_is_available()
        if not engine_available:
            return CheckResult(status=NEEDS_ENGINE, messages=[f"Your answer was collected; {NEEDS_ENGINE_TEXT}."],
                               **base)
    outcomes = run_checks(q.public, ans.value)
    passed = sum(o.ok for o in outcomes)
    items = [(o.ok, o.check.label if o.ok else o.message) for o in outcomes]
    hint = next((o.check.hint for o in outcomes if not o.ok and o.check.hint), "")
    status = PASSED if passed == len(outcomes) else FAILED
    return CheckResult(status=status, passed=passed, total=len(outcomes), hint=hint, items=items, **base)


def _user_namespace() -> dict:
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        try:
            ip = ipython.get_ipython()
        except Exception:  # noqa: BLE001
            ip = None
        if ip is not None:
            return ip.user_ns
    import __main__
    return __main__.__dict__


def check(name: str | None = None):
    """Check one question (``check("q1")``) or all of them (``check()``) against its public checks."""
    install_notebook_handler()
    if _active:  # the grader is loading check cells: nothing to check there
        return None
    return REGISTRY.check(name)


# --------------------------------------------------------------------------- grading, kernel side


def collect_answers(specs: list, namespace: dict | None = None) -> dict:
    """Evaluate ``[[name, expr], ...]`` quietly; the JSON document the grader receives."""
    ns = _user_namespace() if namespace is None else namespace
    answers = {}
    sink = io.StringIO()
    for name, expr in specs:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            ans = evaluate(name, expr, ns)
        sink.seek(0)
        sink.truncate()
        answers[name] = ans.to_json()
    return {"format": 1, "answers": answers}


def print_answers(specs: list, marker: str) -> None:
    """Print the answers as one line ``<marker> <json>`` (run by the grader in the learner's kernel)."""
    doc = collect_answers(specs)
    sys.stdout.write("\n" + marker + " " + json.dumps(doc, ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()
