"""The Docker engine, as the course uses it: always labelled, always cleaned up.

:mod:`.engine` is the one place coursekit talks to the engine (the docker SDK): containers,
networks and volumes with coursekit's labels (:mod:`.labels`), removed when their ``with``
block ends, at exit, or by the watchdog (:mod:`.reaper`) when a kernel is killed. Around it:
waiting for containers (:mod:`.waiting`), the HTTP API spoken by hand (:mod:`.rawapi`, lesson
02), image names (:mod:`.names`), the course's images pulled or built offline (:mod:`.images`,
:mod:`.offline`, the recipes in ``recipes/``), layers (:mod:`.layers`), the course registry
(:mod:`.registry`) and whether an image registry answers at all (:mod:`.hub`).

Rule: the only subpackage that imports the ``docker`` SDK (besides :mod:`coursekit.aws.relay`,
which runs through it); imports :mod:`coursekit.errors` and :mod:`coursekit.ui`, nothing else
of coursekit.
"""
from __future__ import annotations

from .engine import EngineStatus, available, clean, cleanup, client, container, create, network, run, status, volume

__all__ = ["EngineStatus", "available", "clean", "cleanup", "client", "container", "create", "network", "run", "status",
           "volume"]
