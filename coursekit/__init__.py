"""coursekit: the helper package behind the deployment course's notebooks.

``import coursekit`` is fast: heavy libraries (docker, moto, matplotlib) load only when a
function needs them. The names most lessons use are available from the top:

>>> import coursekit as ck
>>> callable(ck.check) and callable(ck.start)
True
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> "module:attribute" (loaded on first use)
_LAZY = {
    "start": "coursekit.lesson:start",
    "needs_engine": "coursekit.lesson:needs_engine",
    "finish": "coursekit.lesson:finish",
    "mode": "coursekit.modes:mode",
    "check": "coursekit.checks:check",
    "doctor": "coursekit.health:doctor",
    "quiz": "coursekit.quizzes:quiz",
    "CoursekitError": "coursekit.errors:CoursekitError",
    "EngineUnavailable": "coursekit.errors:EngineUnavailable",
}

_SUBMODULES = {"engine", "images", "health", "aws", "vm", "vmfetch", "checks", "assign", "lesson", "modes", "errors",
               "plots", "cli", "reaper", "quizzes", "measure",
               "grading", "notebooks", "awsguard", "engineapi", "processes", "layers",
               "dockerlint", "explorer", "waiting", "registry", "imagenames", "swarm", "swarmview", "kube",
               "dockerfile_answers", "sandboxlimits", "dockerfiles", "postgres", "containers", "ecr",
               "buildspec", "buildrunner", "artifacts", "awsrelay", "buildenv", "buildresult", "buildshell", "yamlcheck",
               "cloudmodels", "sortquiz", "awserrors", "ec2states", "policies", "policyjson", "policycheck", "policyexplain", "policydecide",
               "pipeline", "pipelinedef", "pipelinerules", "pipelinerun", "pipelineactions", "pipelinedeploy",
               "pipelineview", "courseapps",
               "gradeclass", "gradelimits", "gradesandbox", "gradeworker",
               "gradeinput", "gradeimage", "gradekernel", "gradereport", "gradeoutputs", "gradequeue", "gradeswarm"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def _friendly_errors() -> None:
    # In a notebook, coursekit's errors print as "what happened / what to do", not a traceback,
    # whether or not the lesson's set-up cell ran. Cheap: only looks for a running IPython.
    from .errors import install_notebook_handler

    install_notebook_handler()


_friendly_errors()


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"coursekit.{name}")
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")


def __dir__():
    return __all__
