"""A live view of a service's tasks while the notebook watches it (lesson ``07-orchestration``).

:func:`task_table` renders the tasks as a small HTML table (slot, state with a colour, desired
state, container, the error Swarm gives); :class:`LiveTasks` keeps one display handle and
redraws it in place, so a student sees a task go ``running -> failed`` and its replacement come
up while :func:`coursekit.orchestrate.swarm.watch` samples the counts for the plot. Without a frontend
(nbval, scripts) the last table stays as plain HTML output.
"""
from __future__ import annotations

import html
import time
from typing import Any, Optional
from ..ui.palette import BAD, GOOD, MUTED, WARN

COLOURS = {"running": GOOD, "complete": GOOD, "starting": WARN, "preparing": WARN, "assigned": WARN, "pending": WARN,
           "new": WARN, "ready": WARN, "shutdown": MUTED, "failed": BAD, "rejected": BAD, "orphaned": BAD}


def task_table(service: Any, *, t: Optional[float] = None, limit: int = 12) -> str:
    """The service's most recent tasks (newest first) as HTML, with running/desired counts on top."""
    tasks = sorted(service.tasks(), key=lambda x: x.get("UpdatedAt", ""), reverse=True)[:limit]
    running = sum(1 for x in tasks if x["Status"]["State"] == "running" and x.get("DesiredState") == "running")
    service.reload()
    desired = (service.attrs["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", "-")
    rows = []
    for x in tasks:
        st = x["Status"]
        state = st.get("State", "?")
        cid = (st.get("ContainerStatus") or {}).get("ContainerID", "")[:12]
        err = html.escape(st.get("Err", "") or st.get("Message", ""))[:90]
        rows.append(f"<tr><td>{x.get('Slot', '')}</td><td style='color:{COLOURS.get(state, '#333')}'><b>"
                    f"{html.escape(state)}</b></td><td>{html.escape(x.get('DesiredState', ''))}</td>"
                    f"<td><code>{cid}</code></td><td>{err}</td></tr>")
    when = f" at {t:4.1f} s" if t is not None else ""
    head = (f"<b>{html.escape(service.name)}</b>{when}: <b>{running}</b> running of <b>{desired}</b> desired"
            "<table><tr><th>slot</th><th>state</th><th>desired</th><th>container</th><th>message</th></tr>")
    return head + "".join(rows) + "</table>"


class LiveTasks:
    """One HTML output that :meth:`update` redraws in place."""

    def __init__(self, service: Any):
        from IPython.display import HTML, display

        self.service, self.t0 = service, time.monotonic()
        self.handle = display(HTML(task_table(service, t=0.0)), display_id=True)

    def update(self) -> None:
        from IPython.display import HTML

        if self.handle is not None:
            self.handle.update(HTML(task_table(self.service, t=time.monotonic() - self.t0)))
