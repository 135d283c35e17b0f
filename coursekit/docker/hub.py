"""Does an image registry answer the engine? (Docker Hub, or the engine's own mirror.)

The difference between the course's full mode and its offline mode (:mod:`coursekit.lesson.modes`),
and what :mod:`coursekit.docker.images` asks before it pulls instead of building a recipe.
Nothing is downloaded: the engine is asked for one small official image's manifest.
"""
from __future__ import annotations

import os
import threading

from . import engine

#: A small official image whose manifest we ask the registry for (nothing is downloaded).
PROBE_IMAGE = os.environ.get("COURSEKIT_PROBE_IMAGE", "busybox:1.36")

_lock = threading.Lock()
_registry: tuple[bool, str] | None = None


def registry_reachable(refresh: bool = False) -> tuple[bool, str]:
    """Ask the engine whether its image registry answers (no image is pulled).

    Uses the engine's distribution endpoint for :data:`PROBE_IMAGE`, so the engine's own
    registry mirrors and proxy settings apply. Returns ``(answered, detail)``.
    """
    global _registry
    with _lock:
        if _registry is not None and not refresh:
            return _registry
        if os.environ.get("COURSEKIT_OFFLINE", "").lower() in {"1", "true", "yes"}:
            _registry = (False, "COURSEKIT_OFFLINE is set")
            return _registry
        try:
            cl = engine.client()
        except Exception as exc:  # no engine: the question does not arise
            return (False, f"no engine to ask ({getattr(exc, 'problem', exc)})")
        try:
            cl.api.inspect_distribution(PROBE_IMAGE)
            _registry = (True, f"the engine's registry answered for {PROBE_IMAGE}")
        except Exception as exc:
            text = (getattr(exc, "explanation", None) or str(exc)).splitlines()[0]
            # Keep the engine's last words ("no such host", "i/o timeout"...): the reason, not the URL.
            _registry = (False, f"the engine could not reach an image registry ({text.rsplit(': ', 1)[-1][:120]})")
        return _registry
