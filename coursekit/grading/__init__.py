"""Grading a whole class, each submission in its own sandbox (the host side).

``coursekit grade`` is :func:`grade` (:mod:`.classroom`); the limits of a sandbox are
:class:`GradeLimits` (:mod:`.limits`). One submission runs in one container on this engine
(:mod:`.local`) or as a task of a Swarm job fed by a work list (:mod:`.swarm`, :mod:`.queue`);
what goes in is :mod:`.inputs`, the image :mod:`.image`, what comes back :mod:`.report`, the
scores :mod:`.scoring`, the files written :mod:`.outputs`. What runs *inside* the sandbox is
:mod:`.worker`, and :mod:`.protocol` is the contract between the two sides. A notebook graded in
this process, unsandboxed (for tests and benchmarks), is :mod:`.inprocess`.

Rule: imports :mod:`coursekit.docker`, :mod:`coursekit.orchestrate`, :mod:`coursekit.dockerfile`,
:mod:`coursekit.exercises`, :mod:`coursekit.ui` and :mod:`coursekit.errors`; never the lessons,
CI/CD or AWS. This facade is lazy: the worker imports this package inside the sandbox, where
nothing of the host side (the docker SDK above all) may load.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"grade": ".classroom", "ClassResult": ".classroom", "GradeLimits": ".limits",
            "GradeResult": ".scoring", "QuestionGrade": ".scoring", "load_questions": ".scoring", "score": ".scoring",
            "grade_notebook": ".inprocess"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
