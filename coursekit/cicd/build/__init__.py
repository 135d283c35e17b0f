"""An AWS CodeBuild ``buildspec.yml`` run for real, in a container, with CodeBuild's rules.

:mod:`.spec` reads and checks the buildspec; :mod:`.runner` runs it (:mod:`.shell` is the one
shell of a build, :mod:`.env` its CodeBuild variables); :mod:`.result` records what happened
and :mod:`.artifacts` what the build leaves behind.
"""
from __future__ import annotations

from .result import BuildResult
from .runner import run
from .spec import Buildspec, BuildspecError, load, parse

__all__ = ["BuildResult", "Buildspec", "BuildspecError", "load", "parse", "run"]
