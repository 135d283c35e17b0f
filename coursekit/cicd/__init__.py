"""CI/CD that runs for real: CodeBuild buildspecs (:mod:`.build`) and CodePipeline-shaped pipelines (:mod:`.pipeline`).

:mod:`.yamlcheck` reads YAML key by key for both; :mod:`.apps` holds the sample apps the
pipelines build and test. Lessons ``08-ci-cd`` and ``13-capstone``.

Rule: imports :mod:`coursekit.docker`, :mod:`coursekit.orchestrate`, :mod:`coursekit.aws`,
:mod:`coursekit.ui` and :mod:`coursekit.errors`.
"""
from __future__ import annotations

__all__ = ["apps", "build", "pipeline", "yamlcheck"]
