"""The docker SDK's own modules, for the code built on :mod:`coursekit.docker`: the one door to them.

coursekit reaches the engine through the docker SDK in this subpackage only: the client and every
resource it makes are :mod:`.engine`'s, and here are the SDK's exceptions and value types, for the
subpackages above that catch an SDK error (``sdk.errors().ImageNotFound``), build a service spec
(``sdk.types().UpdateConfig(...)``) or read a raw stream (:func:`frames`). Each is imported when
asked for, never when coursekit is: ``import coursekit`` stays fast, and so does the grading
sandbox, which has no engine and never loads the SDK.

>>> errors().NotFound.__name__                                        # doctest: +SKIP
'NotFound'
"""
from __future__ import annotations

import importlib
from types import ModuleType


def errors() -> ModuleType:
    """``docker.errors``: ``NotFound``, ``ImageNotFound``, ``APIError``, ``BuildError``..."""
    return importlib.import_module("docker.errors")


def types() -> ModuleType:
    """``docker.types``: ``UpdateConfig``, ``Healthcheck``, ``ServiceMode``, ``Resources``..."""
    return importlib.import_module("docker.types")


def utils() -> ModuleType:
    """``docker.utils``: ``tar``, ``split_command``..."""
    return importlib.import_module("docker.utils")


def frames(sock, tty: bool = False):
    """The frames of an attached stream, as the SDK splits them: ``(stream number, bytes)``."""
    from docker.utils.socket import frames_iter

    return frames_iter(sock, tty)
