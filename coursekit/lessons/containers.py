"""Watching containers live, for lesson ``04-containers``: their state as it changes, restart
counts under a restart policy, memory use under a limit, and plots of what was observed.

Nothing here starts containers (that is :mod:`coursekit.docker.engine`'s job); these helpers look at
containers the lesson started and draw what they saw. Nothing is invented: every point of
every plot is a measurement passed in by the caller.

>>> from coursekit import containers                                     # doctest: +SKIP
>>> samples = containers.watch({"on-failure:3": c}, seconds=3)            # doctest: +SKIP
>>> samples["on-failure:3"][-1].restarts                                  # doctest: +SKIP
3
"""
from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass
from typing import Any, Iterable

from ..ui import plots
from ..ui.palette import BACKGROUND, BAD, BUSY, DARK
from ..ui.plots import show  # (lay out, save, show: the course's one way to finish a figure)

#: A small Python program that takes memory 4 MiB at a time and prints, each step,
#: ``seconds MiB-allocated bytes-the-kernel-counts`` (the container's cgroup usage, v1 or v2).
MEMORY_HOG = """\
import os, time
def usage():
    for p in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        if os.path.exists(p):
            return int(open(p).read())
    return -1
blocks, t0 = [], time.monotonic()
while True:
    print(f"{time.monotonic() - t0:.3f} {len(blocks) * 4} {usage()}", flush=True)
    blocks.append(bytearray(4 << 20))  # 4 MiB, zero-filled: really in memory
    time.sleep(0.05)
"""

#: Busy-loops for ``sys.argv[1]`` seconds (default 1) of wall-clock time, then prints
#: ``CPU-seconds-it-got wall-seconds``. Run it as ``python -c CPU_BURN 2``.
CPU_BURN = """\
import sys, time
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
t, c = time.monotonic(), time.process_time()
while time.monotonic() - t < seconds:
    pass
print(round(time.process_time() - c, 3), round(time.monotonic() - t, 3))
"""

#: Forks children (each sleeps) until the kernel refuses, then reports how many it got.
FORKER = """\
import os, time
kids = []
try:
    while len(kids) < 50:
        pid = os.fork()
        if pid == 0:
            time.sleep(5)
            os._exit(0)
        kids.append(pid)
    print(f"started all {len(kids)} children")
except OSError as exc:
    print(f"fork refused after {len(kids)} children: {exc.strerror}")
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


@dataclass(frozen=True)
class Sample:
    """One look at a container: when (s since watching began), its status, its RestartCount."""

    t: float
    status: str
    restarts: int
    exit_code: int | None = None


def state(container: Any) -> dict:
    """What ``docker inspect`` says about a container's life, in a few fields."""
    container.reload()
    st = container.attrs.get("State", {})
    return {"status": st.get("Status"), "exit_code": st.get("ExitCode"), "oom_killed": st.get("OOMKilled"),
            "restart_count": container.attrs.get("RestartCount", 0), "pid": st.get("Pid")}


def _look(container: Any, t0: float) -> Sample:
    attrs = container.client.api.inspect_container(container.id)
    st = attrs.get("State", {})
    return Sample(round(time.monotonic() - t0, 3), st.get("Status", "?"), attrs.get("RestartCount", 0),
                  st.get("ExitCode"))


def watch(containers: dict[str, Any], seconds: float, *, interval: float = 0.1,
          since: float | None = None) -> dict[str, list[Sample]]:
    """Look at every container each ``interval`` s for ``seconds`` s (in parallel); samples by name.

    ``since``: a ``time.monotonic()`` value that sample times count from (default: now; pass
    the moment you started the containers to see what happened before watching began).
    Stops early once every container has exited and stayed exited for a second (no restart
    policy will bring it back without a daemon restart).
    """
    if not containers:
        return {}
    out: dict[str, list[Sample]] = {name: [] for name in containers}
    t0 = time.monotonic() if since is None else since
    end = time.monotonic() + seconds
    settled_since = None
    with cf.ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
        while time.monotonic() < end:
            futures = {name: pool.submit(_look, c, t0) for name, c in containers.items()}
            for name, fut in futures.items():
                out[name].append(fut.result())
            if all(s[-1].status in ("exited", "dead") for s in out.values()):
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 1.0:
                    break
            else:
                settled_since = None
            time.sleep(interval)
    return out


def parse_memory_log(text: str) -> list[tuple[float, float, float]]:
    """:data:`MEMORY_HOG`'s output as ``(seconds, MiB allocated, MiB the cgroup counts)``."""
    points = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                t, alloc, used = float(parts[0]), float(parts[1]), float(parts[2])
            except ValueError:
                continue
            points.append((t, alloc, used / 2**20 if used >= 0 else float("nan")))
    return points


# --------------------------------------------------------------------------- plots




def plot_restarts(samples: dict[str, list[Sample]], *, title: str = "RestartCount over time",
                  save: str | None = None):
    """One step line per container: its RestartCount as watched."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, ss in samples.items():
        if ss:
            ax.step([s.t for s in ss], [s.restarts for s in ss], where="post", label=name, linewidth=2, alpha=0.8)
    ax.set_xlabel("seconds since the containers were started")
    ax.set_ylabel("RestartCount")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return show(plt, fig, save)


def plot_memory(points: Iterable[tuple[float, float, float]], limit_mib: float, *, exit_note: str = "",
                title: str = "Memory use under a limit", save: str | None = None):
    """What the program allocated and what the kernel counted, against the container's limit."""
    plt = plots.pyplot()
    pts = list(points)
    fig, ax = plt.subplots(figsize=(8, 4))
    if pts:
        ax.plot([p[0] for p in pts], [p[2] for p in pts], "o-", markersize=3, label="memory the kernel counts "
                                                                                   "for the container (cgroup)")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", color="grey", label="memory the program allocated")
        if exit_note:
            ax.annotate(exit_note, (pts[-1][0], pts[-1][2]), xytext=(-330, -12), textcoords="offset points",
                        arrowprops={"arrowstyle": "->", "color": BAD}, fontsize=9, color=BAD,
                        va="center")
    ax.axhline(limit_mib, color=BAD, linestyle=":", label=f"limit: {limit_mib:g} MiB")
    ax.set_xlabel("seconds since the program started")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return show(plt, fig, save)


#: Where each state sits in the lifecycle diagram.
_STATE_XY = {"created": (0, 1), "running": (1.3, 1), "paused": (2.6, 1.7), "exited": (2.6, 0.3),
             "restarting": (1.3, 0.0), "removed": (3.9, 0.3)}


def plot_lifecycle(transitions: Iterable[tuple[str, str, str]], *, title: str = "Container states, as observed",
                   save: str | None = None):
    """A state diagram drawn from observed ``(state before, command, state after)`` triples."""
    plt = plots.pyplot()
    trans = [t for t in transitions if t[0] != t[2] and t[0] in _STATE_XY and t[2] in _STATE_XY]
    states = [s for s in _STATE_XY if any(s in (a, b) for a, _, b in trans)]
    fig, ax = plt.subplots(figsize=(9, 4))
    for s in states:
        x, y = _STATE_XY[s]
        ax.text(x, y, s, ha="center", va="center", fontsize=11, zorder=3,
                bbox={"boxstyle": "round,pad=0.5", "facecolor": BACKGROUND[BUSY], "edgecolor": DARK})
    seen: dict[tuple[str, str], list[str]] = {}
    for a, cmd, b in trans:
        seen.setdefault((a, b), [])
        if cmd not in seen[(a, b)]:
            seen[(a, b)].append(cmd)
    for (a, b), cmds in seen.items():
        (x1, y1), (x2, y2) = _STATE_XY.get(a, (0, 0)), _STATE_XY.get(b, (0, 0))
        bend = 0.25 if (b, a) in seen else 0.0  # two-way pairs: two curved arrows, not one on top of the other
        ax.annotate("", (x2, y2), (x1, y1), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#444", "shrinkA": 28, "shrinkB": 28,
                                "connectionstyle": f"arc3,rad={bend}"})
        # the label sits on the arrow: arc3's curve passes through mid + rad/2 * (dy, -dx)
        mx, my = (x1 + x2) / 2 + bend / 2 * (y2 - y1), (y1 + y2) / 2 - bend / 2 * (x2 - x1)
        ax.text(mx, my + (0.08 if not bend else 0), " / ".join(cmds),
                ha="center", va="center", fontsize=8, color="#333", zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    ax.set_xlim(-0.6, 4.5)
    ax.set_ylim(-0.4, 2.1)
    ax.axis("off")
    ax.set_title(title)
    return show(plt, fig, save)
