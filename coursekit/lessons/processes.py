"""A container seen from the host: just a process, in its own namespaces.

Lesson ``01-containers-and-vms`` uses this to show, not tell, that a container is an ordinary
process on the host's kernel: the host can see it in ``/proc``, and what makes it look
like a separate machine is a set of *namespaces* (its own process IDs, hostname, mounts,
network) that differ from the host's.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

#: namespace -> what it isolates, in a learner's words
NAMESPACES = {
    "pid": "process IDs: the container's first process is PID 1 inside",
    "uts": "hostname: the container has its own name",
    "mnt": "mounts: the container sees its image's files as /",
    "net": "network: its own interfaces, addresses and ports",
    "ipc": "shared memory and message queues",
}


@dataclass
class HostView:
    """What the host knows about one container's main process."""

    host_pid: int
    command: str
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # ns -> (container's, host's)
    note: str = ""

    def table(self) -> str:
        rows = [f"{'namespace':<10} {'container':<22} {'this notebook':<22} same?"]
        for ns, (theirs, ours) in self.namespaces.items():
            rows.append(f"{ns:<10} {theirs:<22} {ours:<22} {'yes' if theirs == ours else 'no: ' + NAMESPACES[ns]}")
        return "\n".join(rows)


def engine_shares_our_kernel() -> bool:
    """True when the engine's containers run on this machine's kernel (Linux, local engine).

    With Docker Desktop (macOS, Windows) the engine runs inside a small VM: its containers'
    processes are not in this machine's ``/proc``.
    """
    from ..docker import engine

    st = engine.status()
    return (platform.system() == "Linux" and st.ok and
            st.details.get("kernel", "") == platform.release() and os.path.isdir("/proc"))


def host_view(container) -> HostView | None:
    """Find the container's main process in the host's ``/proc``; None when it is not there."""
    if not engine_shares_our_kernel():
        return None
    container.reload()
    pid = int(container.attrs["State"]["Pid"])
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        return None
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        command = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    view = HostView(pid, command)
    for ns in NAMESPACES:
        try:
            view.namespaces[ns] = (os.readlink(f"/proc/{pid}/ns/{ns}"), os.readlink(f"/proc/self/ns/{ns}"))
        except PermissionError:
            view.note = "reading another user's namespaces needs root; run as root to see them"
            break
    return view
