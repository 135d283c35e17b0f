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

from dataclasses import dataclass

from ..docker import engine
from ..docker.hub import registry_reachable

FULL, OFFLINE, NO_ENGINE = "full", "offline", "no engine"

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
