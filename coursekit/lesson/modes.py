"""Which of the course's three modes applies here, and why.

=========  ===========================================  ============================
mode       when                                         Docker parts
=========  ===========================================  ============================
full       an engine answers and so does an image        real containers, official
           registry (Docker Hub or the engine's mirror)  images pulled
offline    an engine answers, no image registry does     real containers, images
           (air-gapped labs, CI)                         built from OS packages
no engine  no engine (Binder, JupyterHub) or             explained, not faked
           ``COURSEKIT_NO_ENGINE=1``
=========  ===========================================  ============================

Introduced in ``00-welcome``.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from ..docker import engine

FULL, OFFLINE, NO_ENGINE = "full", "offline", "no engine"

#: A small official image whose manifest we ask the registry for (nothing is downloaded).
PROBE_IMAGE = os.environ.get("COURSEKIT_PROBE_IMAGE", "busybox:1.36")

_lock = threading.Lock()
_registry: tuple[bool, str] | None = None


@dataclass
class Mode:
    name: str
    why: str
    to_full: str

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return self.name == other
        return isinstance(other, Mode) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def _repr_markdown_(self) -> str:
        extra = f" To get to full mode: {self.to_full}" if self.to_full else ""
        return f"**Mode: {self.name}**. {self.why}.{extra}"


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


def mode(refresh: bool = False) -> Mode:
    """The mode that applies now, with the reason and how to reach full mode."""
    st = engine.status(refresh=refresh)
    if not st.ok:
        return Mode(NO_ENGINE, st.reason[:1].upper() + st.reason[1:], st.fix)
    ok, detail = registry_reachable(refresh=refresh)
    if ok:
        return Mode(FULL, f"Docker {st.server_version} answers (API {st.api_version}) and {detail}", "")
    return Mode(OFFLINE, f"Docker {st.server_version} answers (API {st.api_version}), but {detail}; the course's "
                         "images are built locally from OS packages instead",
                "connect the engine to the internet (or configure a registry mirror in the engine's daemon.json)")
