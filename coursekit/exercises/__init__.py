"""Exercises: questions and their checks, ``check("q1")``, and the student versions made from solutions.

:mod:`.checks` (``question``, ``@public``, ``@hidden``, ``check``: what a check cell writes and
what a learner calls), :mod:`.assign` (``coursekit assign``: exercises generated from
solutions) and :mod:`.notebooks` (reading and writing notebook files).

Rule: this runs in the learner's kernel *and* inside the grading sandbox, so at import it uses
the standard library and nbformat only, and of coursekit only :mod:`coursekit.errors`. Whether a
Docker engine answers is told to it (:func:`.checks.set_engine_probe`), never asked of
:mod:`coursekit.docker`.
"""
from __future__ import annotations

from .checks import check, hidden, public, question

__all__ = ["check", "hidden", "public", "question"]
