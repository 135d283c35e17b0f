"""Every limit a submission is graded under: the sandbox's fields, with grading's defaults and its own.

``coursekit grade`` (:mod:`coursekit.grading.classroom`) runs each student's notebook in a container
of its own (:mod:`coursekit.grading.local`, or a Swarm task, :mod:`coursekit.grading.swarm`).
:class:`GradeLimits` is the container sandbox of :mod:`coursekit.dockerfile.limits` (memory,
swap, PIDs, CPUs, open files, capabilities, no-new-privileges, tmpfs, engine log: the same fields,
the same meaning, the same translation to ``docker run`` and to a Swarm task), with stricter
defaults (no network at all, a read-only root, the image's non-root ``grader`` user, a ``noexec``
``/tmp``, no core dumps) and what grading a notebook adds: the wall clocks, the kernel restarts and
the size caps. Every field has its help text; ``print(GradeLimits.describe())`` shows them all, and
the fields marked ``cli`` are the flags of ``coursekit grade``. The whole structure is sent to the
worker inside the sandbox, which enforces the notebook's own limits (cells, restarts, answers).

A sandbox weaker than the defaults is refused, with what to write instead:

>>> GradeLimits().create_options()["network_mode"], GradeLimits().create_options()["user"]
('none', '10001:10001')
>>> GradeLimits(timeout=20, cell_timeout=30)
Traceback (most recent call last):
...
coursekit.errors.LimitsError: cell_timeout=30 is longer than timeout=20: a single cell could use the whole time
What to do: make timeout larger than cell_timeout (the defaults are 300 and 60 seconds)

Answers that need the Docker engine (a Dockerfile, say) are not run here: the trusted grader
builds and runs them after the sandbox step, through
:func:`coursekit.dockerfile.tryout.try_dockerfile` and the plain
:class:`~coursekit.dockerfile.limits.Limits` (see :mod:`coursekit.grading.classroom`).

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..dockerfile.limits import ContainerLimits, default_of, limit, size_bytes
from ..errors import LimitsError

#: The course image submissions run in (coursekit itself is layered on top, see grading.image).
GRADER_IMAGE = "coursekit/grader:1"


def _default(name: str, value):
    return default_of(ContainerLimits, name, value)


@dataclass(frozen=True)
class GradeLimits(ContainerLimits):
    """The sandbox of one submission. ``GradeLimits(timeout=120)`` changes one value."""

    # -- the sandbox's fields, with grading's defaults (worker + kernel + whatever they start share them;
    #    on memory exhaustion the kernel is the one killed, see coursekit.grading.worker, and its cell skipped)
    memory: str = _default("memory", "1g")
    network: str = _default("network", "none")
    read_only: bool = _default("read_only", True)
    tmpfs_size: str = _default("tmpfs_size", "64m")
    shm_size: str = _default("shm_size", "8m")
    user: str = _default("user", "10001:10001")
    core_dumps: bool = _default("core_dumps", False)
    engine_log_size: str = _default("engine_log_size", "16m")
    # -- grading's own
    image: str = limit(GRADER_IMAGE, "the grading image (coursekit is layered on top of it)")
    timeout: float = limit(300.0, "seconds for a whole submission: start, every cell, the answers", cli=True)
    cell_timeout: float = limit(60.0, "seconds for one cell or one answer's evaluation, then it is interrupted",
                                cli=True)
    interrupt_grace: float = limit(5.0, "seconds an interrupted cell gets to stop before the kernel counts as hung "
                                        "(it is then killed and the notebook run again without that cell)")
    restarts: int = limit(2, "kernel restarts after a crash or hang, each skipping the culprit cell")
    answers_bytes: int = limit(4_000_000, "all answers of one submission together, as JSON (each is also capped "
                                          "at coursekit.exercises.checks.MAX_ANSWER_BYTES)")
    submission_bytes: int = limit(20_000_000, "the notebook (outputs stripped) plus the files beside it")
    message_chars: int = limit(400, "characters of one cell's error kept for the feedback")

    def __post_init__(self):
        super().__post_init__()
        if self.network != "none":
            raise LimitsError(f"network={self.network!r}: a submission's sandbox never gets a network",
                              'leave network="none" (answers that need Docker are built by the trusted grader)')
        if not self.read_only:
            raise LimitsError("read_only=False: the sandbox's root file system is always read-only",
                              "leave read_only=True; the submission may write to /tmp (tmpfs_size)")
        if not self.user or self.user.split(":")[0] in ("0", "root"):
            raise LimitsError(f"user={self.user!r}: submissions never run as root",
                              'use the image\'s grader user, "10001:10001"')
        if "ALL" not in self.cap_drop or self.cap_add or not self.no_new_privileges:
            raise LimitsError("the sandbox drops every capability, adds none and sets no-new-privileges",
                              "leave cap_drop, cap_add and no_new_privileges at their defaults")
        if not self.shm_size:
            raise LimitsError("the sandbox's /dev/shm is a small tmpfs of its own", "leave shm_size at its default")
        for name in ("timeout", "cell_timeout", "interrupt_grace"):
            if not getattr(self, name) > 0:
                raise LimitsError(f"{name}={getattr(self, name)!r} must be a positive number of seconds",
                                  f"give {name} in seconds, e.g. {name}=60")
        if self.cell_timeout > self.timeout:
            raise LimitsError(f"cell_timeout={self.cell_timeout:g} is longer than timeout={self.timeout:g}: a "
                              "single cell could use the whole time",
                              "make timeout larger than cell_timeout (the defaults are 300 and 60 seconds)")
        if not 0 <= self.restarts <= 10:
            raise LimitsError(f"restarts={self.restarts!r} is out of range", "use 0 to 10 (default 2)")
        for name in ("answers_bytes", "submission_bytes", "message_chars"):
            if getattr(self, name) < 100:
                raise LimitsError(f"{name}={getattr(self, name)!r} is too small", f"leave {name} at its default")
        if size_bytes(self.engine_log_size) < self.answers_bytes * 2:
            raise LimitsError(f"engine_log_size={self.engine_log_size} cannot hold the answers "
                              f"(answers_bytes={self.answers_bytes:,}) with room to spare",
                              "make engine_log_size at least twice answers_bytes")

    def create_options(self, *, port: int | None = None, host_port: int | None = None,
                       network: str | None = None) -> dict:
        """Keyword arguments for ``engine.create``: every limit (a grading sandbox publishes no port)."""
        if port:
            raise LimitsError("a grading sandbox publishes no port", "leave port out")
        return super().create_options(network=network)

    @property
    def budget(self) -> float:
        """Seconds the worker may use: it must be done (answers printed) a little before the host's wall clock ends."""
        return max(self.timeout - 10.0, self.timeout * 0.8)
