"""The notebook runtime every lesson uses: ``start``, ``needs_engine``, ``finish``, the mode, ``doctor``, quizzes.

:mod:`.steps` (the three calls of every lesson), :mod:`.modes` (full, offline or no engine, and
why), :mod:`.health` (``coursekit doctor``), :mod:`.quizzes` and :mod:`.sortquiz` (check your
understanding), :mod:`.measure` (timing honestly).

Rule: imports :mod:`coursekit.errors`, :mod:`coursekit.ui` and :mod:`coursekit.docker`; the
doctor also asks :mod:`coursekit.lessons.vm` whether a VM can boot.
"""
from __future__ import annotations

from .health import doctor
from .modes import FULL, NO_ENGINE, OFFLINE, Mode, mode
from .quizzes import Quiz, quiz
from .sortquiz import sort_quiz
from .steps import finish, needs_engine, start

__all__ = ["FULL", "NO_ENGINE", "OFFLINE", "Mode", "Quiz", "doctor", "finish", "mode", "needs_engine", "quiz",
           "sort_quiz", "start"]
