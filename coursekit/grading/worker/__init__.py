"""What runs INSIDE a grading sandbox: ``python3 -m coursekit.grading.worker``.

:mod:`.serve` is PID 1 of the sandbox (the request in, the report out); :mod:`.kernel` runs the
notebook in a kernel with restarts; :mod:`.hygiene` is the sandbox's own hygiene (killing,
wiping, the kernel's settings).

Rule: the standard library, nbclient and ipykernel; of coursekit only :mod:`coursekit.exercises`,
:mod:`coursekit.grading.protocol` (with the :mod:`coursekit.grading.limits` it sends) and
:mod:`coursekit.grading.queue`, :mod:`coursekit.grading.pipe`. Never ``docker`` nor
:mod:`coursekit.docker` (a test imports the worker and checks).
"""

__all__ = ["hygiene", "kernel", "serve"]
