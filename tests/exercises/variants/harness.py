"""Grade one answer of one question with the solution's own checks, in this process: a variant.

A variant is the code a learner might write for a question's answer cell (a correct one written
another way, or a plausible wrong one). :func:`judge` loads the solution notebook's setup cell and
check cells once (so the check helpers and every public and hidden check are registered, as the
grader has them), runs the variant's code in a copy of that namespace, and checks the question:
``"passed"`` or ``"failed"`` (or another status, with the messages).
"""
from __future__ import annotations

import functools
from pathlib import Path

from coursekit.exercises import assign, notebooks
from coursekit.exercises.checks import Registry, collecting

ROOT = Path(__file__).resolve().parents[3]


@functools.lru_cache(maxsize=None)
def _loaded(stem: str) -> tuple[Registry, dict]:
    nb = notebooks.read(ROOT / "solutions" / f"{stem}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    reg, ns = Registry(), {"__name__": "__variant__"}
    with collecting(reg):
        for i, cell in enumerate(code):
            if i == 0 or assign.CHECKS_TAG in notebooks.tags_of(cell):
                exec(compile(assign.unmarked(notebooks.source_of(cell)), f"<{stem} cell {i}>", "exec"), ns)  # noqa: S102
    return reg, ns


def judge(stem: str, question: str, code: str):
    """The grade the class grader gives ``question`` when its answer cell holds ``code`` (public and hidden
    checks, scored as :func:`coursekit.grading.scoring.score` does): a QuestionGrade."""
    from coursekit.exercises import checks
    from coursekit.grading import scoring

    reg, ns = _loaded(stem)
    mine = dict(ns)
    exec(compile(code, f"<variant of {stem} {question}>", "exec"), mine)  # noqa: S102
    q = reg.questions[question]
    answer = checks.evaluate(q.name, q.answer, mine)
    return scoring.score({q.name: q}, {q.name: answer}).questions[q.name]


def verdict(stem: str, question: str, code: str, timeout: int = 120) -> tuple[str, str]:
    """(status, what the checks said, failed hidden checks included): ``passed`` only when every check passed.
    A variant that runs longer than ``timeout`` seconds fails the test (the grader would time it out too)."""
    import signal

    def stop(*_):
        raise TimeoutError(f"the variant ran longer than {timeout} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(timeout)
    try:
        g = judge(stem, question, code)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return g.status, "; ".join(g.messages + [f"hidden {n} failed" for n in g.failed_hidden])[:2000]


def assert_judged(right: bool, stem: str, question: str, code: str) -> None:
    """A right variant passes; a wrong one does not (it fails a check, or its own error stops it: 0 points)."""
    status, said = verdict(stem, question, code)
    if right:
        assert status == "passed", said
    else:
        assert status in ("failed", "error"), f"{status}: {said}"


def variant_tests(variants: dict):
    """A parametrized test of ``{(stem, question): {name: (right, code)}}``: each variant judged as labelled."""
    import pytest

    cases = [(stem, q, name) for (stem, q), named in variants.items() for name in named]

    @pytest.mark.parametrize("stem, question, name", cases, ids=[f"{s[:2]}-{q}-{n}" for s, q, n in cases])
    def test_variant(stem, question, name):
        right, code = variants[(stem, question)][name]
        assert_judged(right, stem, question, code)

    return test_variant
