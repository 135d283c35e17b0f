"""coursekit: the helper package behind the deployment course's notebooks.

``import coursekit`` is fast: heavy libraries (docker, moto, matplotlib) load only when a
function needs them. The names most lessons use are available from the top:

>>> import coursekit as ck
>>> callable(ck.check) and callable(ck.start)
True

The package is a set of subpackages, each with a rule of what it may import (see
``ARCHITECTURE.md``): ``ui``, ``lesson``, ``docker``, ``orchestrate``, ``dockerfile``, ``aws``,
``cicd``, ``exercises``, ``grading`` and ``lessons``. The lessons also use short flat names,
``from coursekit import engine, layers, swarm, policies``: :data:`FLAT` maps each to the
module it names (``coursekit.engine`` is :mod:`coursekit.docker.engine`).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

#: The names every lesson uses, ``name -> "module:attribute"`` (loaded on first use).
NAMES = {
    "start": "coursekit.lesson.steps:start",
    "needs_engine": "coursekit.lesson.steps:needs_engine",
    "finish": "coursekit.lesson.steps:finish",
    "mode": "coursekit.lesson.modes:mode",
    "check": "coursekit.exercises.checks:check",
    "doctor": "coursekit.lesson.health:doctor",
    "quiz": "coursekit.lesson.quizzes:quiz",
    "CoursekitError": "coursekit.errors:CoursekitError",
    "EngineUnavailable": "coursekit.errors:EngineUnavailable",
}

#: The subpackages, bottom of the dependency graph first (``ARCHITECTURE.md`` has the rules).
SUBPACKAGES = ("ui", "exercises", "docker", "aws", "dockerfile", "orchestrate", "cicd", "grading", "lesson",
               "lessons")

#: The lessons' flat names: ``from coursekit import engine`` is :mod:`coursekit.docker.engine`.
FLAT = {
    # the notebook runtime and what the learner sees
    "plots": "coursekit.ui.plots", "modes": "coursekit.lesson.modes", "health": "coursekit.lesson.health",
    "quizzes": "coursekit.lesson.quizzes", "sortquiz": "coursekit.lesson.sortquiz",
    "measure": "coursekit.lesson.measure",
    # the engine, images, registries, orchestration
    "engine": "coursekit.docker.engine", "waiting": "coursekit.docker.waiting", "engineapi": "coursekit.docker.rawapi",
    "imagenames": "coursekit.docker.names", "images": "coursekit.docker.images", "layers": "coursekit.docker.layers",
    "registry": "coursekit.docker.registry", "swarm": "coursekit.orchestrate.swarm",
    "swarmview": "coursekit.orchestrate.swarmview", "kube": "coursekit.orchestrate.kube",
    "dockerlint": "coursekit.dockerfile.linter", "dockerfile_answers": "coursekit.dockerfile.tryout",
    # AWS
    "awserrors": "coursekit.aws.errors", "awsguard": "coursekit.aws.guard", "ecr": "coursekit.aws.ecr",
    "policies": "coursekit.aws.iam",
    # CI/CD
    "buildspec": "coursekit.cicd.build.spec", "buildrunner": "coursekit.cicd.build.runner",
    "courseapps": "coursekit.cicd.apps", "pipeline": "coursekit.cicd.pipeline",
    "pipelinedef": "coursekit.cicd.pipeline.definition",
    # exercises
    "checks": "coursekit.exercises.checks",
    # one lesson each
    "vm": "coursekit.lessons.vm", "processes": "coursekit.lessons.processes", "explorer": "coursekit.lessons.explorer",
    "containers": "coursekit.lessons.containers", "postgres": "coursekit.lessons.postgres",
    "dockerfiles": "coursekit.lessons.dockerfiles", "cloudmodels": "coursekit.lessons.cloudmodels",
    "ec2states": "coursekit.lessons.ec2states",
}

__all__ = sorted(NAMES)


def __getattr__(name: str):
    if name in NAMES:
        mod, attr = NAMES[name].split(":")
        value = getattr(importlib.import_module(mod), attr)
        if name == "check":  # ck.check(...) asks the engine when a question needs one (exercises never imports it)
            from .lesson.steps import tell_checks_about_the_engine

            tell_checks_about_the_engine()
        globals()[name] = value
        return value
    if name in FLAT:
        return importlib.import_module(FLAT[name])
    if name in SUBPACKAGES or name in ("cli", "errors"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")


def __dir__():
    return sorted({*NAMES, *FLAT, *SUBPACKAGES, "cli", "errors", "__version__"})


class _FlatNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import coursekit.checks`` (a notebook written before the subpackages) gets the module it now is.

    The very module object, under both names: nothing is copied, and no module file stands in.
    """

    coursekit_flat_names = True  # (found again after a reload, which makes a new class)

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, flat = fullname.partition(".")
        if prefix != __name__ or flat not in FLAT:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(FLAT[spec.name.partition(".")[2]])

    def exec_module(self, module):
        return None


if not any(getattr(f, "coursekit_flat_names", False) for f in sys.meta_path):
    sys.meta_path.append(_FlatNames())


def _friendly_errors() -> None:
    # In a notebook, coursekit's errors print as "what happened / what to do", not a traceback,
    # whether or not the lesson's set-up cell ran. Cheap: only looks for a running IPython.
    from .errors import install_notebook_handler

    install_notebook_handler()


_friendly_errors()
