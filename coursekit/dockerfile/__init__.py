"""Dockerfiles: read (:mod:`.syntax`), linted (:mod:`.linter`), built and run under limits (:mod:`.tryout`).

Every limit a learner's Dockerfile is built and run under is declared in :mod:`.limits`; the
time-limited build itself is :mod:`.build`. Lesson ``05-dockerfiles`` and the grader.

Rule: imports :mod:`coursekit.docker`, :mod:`coursekit.ui` and :mod:`coursekit.errors`; never
:mod:`coursekit.grading` (grading imports this). This facade loads only the pure modules
(syntax, linter, limits), which the grading sandbox may import; ``coursekit.dockerfile.tryout``
(which drives the engine) is imported by name.
"""
from __future__ import annotations

from .limits import Limits, size_bytes
from .linter import Finding, Report, lint
from .syntax import Dockerfile, Instruction, Stage, parse

__all__ = ["Dockerfile", "Finding", "Instruction", "Limits", "Report", "Stage", "lint", "parse", "size_bytes"]
