"""Errors that speak to the learner.

Every problem coursekit reports is a :class:`CoursekitError`: it names what went wrong
(``problem``) and what to do about it (``fix``). In a notebook, these print as a short
message instead of a traceback (see :func:`install_notebook_handler`), because a student
should never have to read our stack frames to learn that the Docker engine is down.
"""
from __future__ import annotations

import sys


class CoursekitError(Exception):
    """A problem the learner can act on.

    >>> e = CoursekitError("the engine is down", fix="start Docker Desktop")
    >>> print(e)
    the engine is down
    What to do: start Docker Desktop
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem)

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}\nWhat to do: {self.fix}"
        return self.problem


# One kind of error per area of the package, so that callers (and tests) catch what they mean
# instead of reading message text. Each still carries its problem and its fix.

class EngineUnavailable(CoursekitError):
    """No usable Docker engine: absent, down, too old, or switched off on purpose."""


class DockerError(CoursekitError):
    """The engine answered but refused or failed (a taken port or name, a missing image, a failed build)."""


class ImageProvisioningError(DockerError):
    """An image the course needs could neither be pulled nor built."""


class RegistryError(DockerError):
    """The course registry (or a registry's HTTP API) refused or could not start."""


class OrchestrationError(CoursekitError):
    """Swarm mode or a service did not do what was asked (or a Kubernetes cluster is not there)."""


class DockerfileError(CoursekitError):
    """A Dockerfile that cannot be read, or a tryout that asks for what the sandbox cannot do (a taken port...)."""


class LimitsError(CoursekitError):
    """A sandbox limit out of range or weaker than the sandbox allows (``Limits``, ``GradeLimits``)."""


class AWSSandboxError(CoursekitError):
    """The AWS sandbox refused a request or could not start."""


class CICDError(CoursekitError):
    """A build or a pipeline could not start or run (a bad source folder, an unknown project...)."""


class NotebookError(CoursekitError):
    """A notebook file that cannot be read (not JSON, not a notebook)."""


class CheckError(CoursekitError):
    """``check()`` was asked about something it does not know."""


class GradingError(CoursekitError):
    """A class cannot be graded as asked (no submissions, a broken solution, the grading image missing)."""


class LessonError(CoursekitError):
    """A lesson's helper was used in a way it cannot work (a VM that cannot boot, a model's bad input...)."""


def _render(exc: CoursekitError) -> str:
    kind = type(exc).__name__
    lines = [f"coursekit: {exc.problem}"]
    if exc.fix:
        lines.append(f"What to do: {exc.fix}")
    lines.append(f"({kind})")
    return "\n".join(lines)


def install_notebook_handler() -> bool:
    """In IPython, show CoursekitError as a short message, not a traceback.

    The cell still counts as failed (so nbval and "Run all" stop at it), but the learner
    reads two lines that say what happened and what to do. Returns True when installed.
    """
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    try:
        ip = ipython_mod.get_ipython()
    except Exception:  # pragma: no cover - IPython half-initialised
        return False
    if ip is None or getattr(ip, "_coursekit_handler", False):
        return ip is not None

    def handler(shell, etype, value, tb, tb_offset=None):
        text = _render(value)
        print(text, file=sys.stderr)
        return [text]

    ip.set_custom_exc((CoursekitError,), handler)
    ip._coursekit_handler = True
    return True
