"""Every limit a submission is graded under, declared in one place, with its default.

``coursekit grade`` (:mod:`coursekit.grading.classroom`) runs each student's notebook in a container
of its own (:mod:`coursekit.grading.local`). :class:`GradeLimits` extends the Dockerfile
sandbox's :class:`~coursekit.dockerfile.limits.Limits` (memory, swap, PIDs, CPUs, open files,
capabilities, no-new-privileges, engine log cap: the same fields, the same meaning) with
what grading a notebook adds, and changes a few defaults:

===================  ==========  ===========================================================
limit                default     what it bounds
===================  ==========  ===========================================================
memory (and swap)    1g          the whole sandbox: worker + kernel + whatever they start; over
                                 it the kernel is killed first (it is the one to go, see
                                 :mod:`coursekit.grading.worker`) and its cell is skipped
pids                 128         processes *and* threads: a fork bomb stops there
cpus                 1.0         CPU cores of one sandbox (N sandboxes run side by side)
nofile               1024        open files per process
network              "none"      no network at all, not even the default bridge
read_only            True        read-only root file system ...
tmpfs_size           64m         ... and one writable tmpfs, ``/tmp`` (noexec, nosuid, nodev)
shm_size             8m          ``/dev/shm``, Docker's shared-memory tmpfs (noexec too)
user                 10001:10001 the image's ``grader`` user, never root
cap_drop, nnp        ALL, yes    no capabilities; setuid programs gain nothing
core dumps           0           a crashing kernel leaves no core (ulimit core=0)
timeout              300 s       wall clock of the whole sandbox, from start to removal
cell_timeout         60 s        one cell (or one answer's evaluation), then it is interrupted
interrupt_grace      5 s         how long an interrupted cell may take to stop before the kernel
                                 is declared hung, killed and the notebook run again without it
restarts             2           kernel restarts after a crash or hang (each skips the culprit)
answers_bytes        4 MB        all answers of one submission as JSON (each one is also capped
                                 at :data:`coursekit.exercises.checks.MAX_ANSWER_BYTES`)
submission_bytes     20 MB       the notebook (outputs stripped) plus the files beside it
message_chars        400         the error text kept from one cell
engine_log_size      16m         what the engine keeps of the worker's output (only the worker
                                 writes there; the student's code cannot)
===================  ==========  ===========================================================

>>> GradeLimits().create_options()["network_mode"], GradeLimits().create_options()["user"]
('none', '10001:10001')
>>> GradeLimits(timeout=20, cell_timeout=30)
Traceback (most recent call last):
...
coursekit.errors.CoursekitError: cell_timeout=30 is longer than timeout=20: a single cell could use the whole time
What to do: make timeout larger than cell_timeout (the defaults are 300 and 60 seconds)

Answers that need the Docker engine (a Dockerfile, say) are not run here: the trusted grader
builds and runs them after the sandbox step, through
:func:`coursekit.dockerfile.tryout.try_dockerfile` and the plain
:class:`~coursekit.dockerfile.limits.Limits` (see :mod:`coursekit.grading.classroom`).

Lesson: none (the instructor's side: issue 7, ``coursekit grade``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import CoursekitError
from ..dockerfile.limits import Limits, size_bytes

#: The course image submissions run in (coursekit itself is layered on top, see gradesandbox).
GRADER_IMAGE = "coursekit/grader:1"


@dataclass(frozen=True)
class GradeLimits(Limits):
    """The sandbox of one submission. ``GradeLimits(timeout=120)`` changes one value."""

    # -- the Limits fields whose grading defaults differ (same meaning as in sandboxlimits)
    memory: str = "1g"             # RAM of the whole sandbox (worker + kernel + children)
    pids: int = 128                # processes and threads (a kernel with moto uses a few dozen)
    network: str = "none"          # no network at all
    read_only: bool = True         # read-only root; /tmp is the only writable place
    tmpfs_size: str = "64m"        # size of /tmp
    shm_size: str = "8m"           # size of /dev/shm (Docker's own tmpfs, noexec; multiprocessing needs it)
    engine_log_size: str = "16m"   # what the engine keeps of the worker's (private) output
    # -- grading only
    image: str = GRADER_IMAGE      # the grading image (gradesandbox adds coursekit on top)
    user: str = "10001:10001"      # the image's non-root `grader` user
    timeout: float = 300.0         # seconds for the whole sandbox: start, every cell, the answers
    cell_timeout: float = 60.0     # seconds for one cell or one answer's evaluation
    interrupt_grace: float = 5.0   # seconds an interrupted cell gets to stop before the kernel counts as hung
    restarts: int = 2              # kernel restarts after a crash or hang, each skipping the culprit cell
    answers_bytes: int = 4_000_000  # all answers together, as JSON
    submission_bytes: int = 20_000_000  # notebook (without outputs) + files beside it
    message_chars: int = 400       # characters of one cell's error kept for the feedback

    def __post_init__(self):
        super().__post_init__()
        if self.network != "none":
            raise CoursekitError(f"network={self.network!r}: a submission's sandbox never gets a network",
                                 'leave network="none" (answers that need Docker are built by the trusted grader)')
        if not self.read_only:
            raise CoursekitError("read_only=False: the sandbox's root file system is always read-only",
                                 "leave read_only=True; the submission may write to /tmp (tmpfs_size)")
        if not self.user or self.user.split(":")[0] in ("0", "root"):
            raise CoursekitError(f"user={self.user!r}: submissions never run as root",
                                 'use the image\'s grader user, "10001:10001"')
        if "ALL" not in self.cap_drop or self.cap_add or not self.no_new_privileges:
            raise CoursekitError("the sandbox drops every capability, adds none and sets no-new-privileges",
                                 "leave cap_drop, cap_add and no_new_privileges at their defaults")
        size_bytes(self.shm_size, "shm_size")
        for name in ("timeout", "cell_timeout", "interrupt_grace"):
            if not getattr(self, name) > 0:
                raise CoursekitError(f"{name}={getattr(self, name)!r} must be a positive number of seconds",
                                     f"give {name} in seconds, e.g. {name}=60")
        if self.cell_timeout > self.timeout:
            raise CoursekitError(f"cell_timeout={self.cell_timeout:g} is longer than timeout={self.timeout:g}: a "
                                 "single cell could use the whole time",
                                 "make timeout larger than cell_timeout (the defaults are 300 and 60 seconds)")
        if not 0 <= self.restarts <= 10:
            raise CoursekitError(f"restarts={self.restarts!r} is out of range", "use 0 to 10 (default 2)")
        for name in ("answers_bytes", "submission_bytes", "message_chars"):
            if getattr(self, name) < 100:
                raise CoursekitError(f"{name}={getattr(self, name)!r} is too small", f"leave {name} at its default")
        if size_bytes(self.engine_log_size) < self.answers_bytes * 2:
            raise CoursekitError(f"engine_log_size={self.engine_log_size} cannot hold the answers "
                                 f"(answers_bytes={self.answers_bytes:,}) with room to spare",
                                 "make engine_log_size at least twice answers_bytes")

    def create_options(self, *, port: int | None = None, host_port: int | None = None) -> dict:
        """Keyword arguments for ``engine.create``: the Dockerfile sandbox's options, plus the user,
        no core dumps, a ``noexec`` /tmp, and stdin open (the submission arrives there)."""
        from docker.types import Ulimit

        if port:
            raise CoursekitError("a grading sandbox publishes no port", "leave port out")
        opts = super().create_options()
        opts["ulimits"] = list(opts["ulimits"]) + [Ulimit(name="core", soft=0, hard=0)]
        opts["tmpfs"] = {"/tmp": f"rw,noexec,nosuid,nodev,size={self.tmpfs_size}"}
        opts["user"] = self.user
        opts["shm_size"] = self.shm_size
        opts["stdin_open"] = True
        opts["environment"] = {"HOME": "/tmp", "COURSEKIT_NO_ENGINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        return opts

    @property
    def budget(self) -> float:
        """Seconds the worker may use: it must be done (answers printed) a little before the host's wall clock ends."""
        return max(self.timeout - 10.0, self.timeout * 0.8)

    def to_dict(self) -> dict:
        """Plain values (for the state file and the log)."""
        d = asdict(self)
        return {f.name: (list(d[f.name]) if isinstance(d[f.name], tuple) else d[f.name]) for f in fields(self)}

    @classmethod
    def from_dict(cls, doc: dict) -> "GradeLimits":
        """The limits :meth:`to_dict` wrote (the worker rebuilds them from its request); unknown keys are refused."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise CoursekitError(f"unknown grading limits: {', '.join(unknown)}",
                                 "the host and the sandbox run different coursekit versions: rebuild the sandbox image")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})
