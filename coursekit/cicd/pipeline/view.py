"""Pictures of a pipeline: its stages as coloured boxes (live while it runs), and a timing chart.

:class:`PipelineView` draws the stages left to right, each a box holding its actions, coloured
by state as CodePipeline's console does (grey: not run yet, blue: in progress, green:
succeeded, red: failed), with each action's provider, duration, last log line or error, and
what it made (build id, test counts, the deployed URL). In a notebook, ``show()`` displays it
once and ``refresh()`` redraws it in place (a display handle: no widget manager is needed, so
a notebook saved after a run, or executed by nbval, keeps the last picture as plain HTML).
:func:`timing_chart` is a Gantt chart of an execution: one row per action, one bar per
attempt, coloured by its result, so a retry shows as a red bar, a gap, then a green bar.
Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import html
import time
from typing import Any
from ...ui.notebook import in_notebook
from ...ui.palette import BACKGROUND, BAD, BUSY, FAINT, GOOD, MUTED, WARN

COLOURS = {"Idle": MUTED, "InProgress": BUSY, "Succeeded": GOOD, "Failed": BAD, "Stopped": WARN}
BACKGROUNDS = {status: BACKGROUND[colour] for status, colour in COLOURS.items()}


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _badge(status: str) -> str:
    return (f'<span style="background:{COLOURS.get(status, MUTED)};color:white;padding:0 6px;'
            f'border-radius:8px;font-size:85%">{_esc(status)}</span>')


def _action_box(definition: Any, run: Any) -> str:
    status = run.status if run else "Idle"
    t = definition
    lines = [f'<b>{_esc(t.name)}</b> {_badge(status)}',
             f'<span style="color:{MUTED}">{_esc(t.provider)} &middot; {_esc(t.category)}'
             + (f' &middot; runOrder {t.run_order}' if t.run_order != 1 else "") + "</span>"]
    if run and run.last:
        took = f"{run.last.seconds:.1f} s" + (f", attempt {len(run.attempts)}" if len(run.attempts) > 1 else "")
        lines.append(f'<span style="color:{MUTED}">{_esc(took)}</span>')
        s = run.summary
        for key in ("revision", "tests", "url", "service", "answer"):
            if s.get(key):
                value = str(s[key])[:12] if key == "revision" else str(s[key])
                lines.append(f"{_esc(key)}: <code>{_esc(value[:90])}</code>")
        if run.error:
            error = run.error if len(run.error) < 260 else run.error[:250] + " ..."
            lines.append(f'<span style="color:{COLOURS["Failed"]}">{_esc(error)}</span>')
        elif status == "InProgress" and run.last.log:
            lines.append(f'<span style="color:{MUTED};font-family:monospace">{_esc(run.last.log[-1][:90])}</span>')
    return (f'<div style="border-left:4px solid {COLOURS.get(status)};background:{BACKGROUNDS.get(status)};'
            f'margin:4px 0;padding:4px 6px;border-radius:3px;font-size:90%;overflow-wrap:anywhere">'
            + "<br>".join(lines) + "</div>")


def pipeline_html(definition: Any, execution: Any = None, extra: str = "") -> str:
    """The stages as boxes; with an execution, coloured by its state."""
    boxes = []
    for stage in definition.stages:
        run = execution.stages[stage.name] if execution else None
        status = run.status if run else "Idle"
        acts = "".join(_action_box(a, run.actions[a.name] if run else None) for a in stage.actions)
        boxes.append(f'<div style="border:2px solid {COLOURS.get(status)};border-radius:6px;padding:6px;'
                     f'min-width:170px;max-width:260px;background:white">'
                     f'<div style="font-weight:bold">{_esc(stage.name)} {_badge(status)}</div>{acts}</div>')
    arrow = f'<div style="align-self:center;font-size:22px;color:{MUTED};padding:0 4px">&#8594;</div>'
    head = f"<b>Pipeline <code>{_esc(definition.name)}</code></b>"
    if execution is not None:
        head += (f" &middot; execution <code>{_esc(execution.id[:8])}</code> {_badge(execution.status)} "
                 f"&middot; {execution.seconds:.1f} s")
    return (f'<div style="font-family:sans-serif">{head}<div style="display:flex;flex-wrap:wrap;'
            f'align-items:stretch;gap:2px;margin-top:4px">{arrow.join(boxes)}</div>{extra}</div>')


def execution_html(execution: Any) -> str:
    """The boxes, then where each artifact went."""
    rows = "".join(f"<tr><td><code>{_esc(a.name)}</code></td><td>{_esc(a.producer)}</td>"
                   f"<td><code>{_esc(a.url)}</code></td><td style='text-align:right'>{a.size:,} B</td></tr>"
                   for a in execution.artifacts.values())
    table = ("<table style='margin-top:6px;font-size:90%'><tr><th>artifact</th><th>made by</th>"
             f"<th>stored at</th><th>size</th></tr>{rows}</table>") if rows else ""
    return pipeline_html(execution.pipeline.definition, execution, table)


def execution_text(execution: Any) -> str:
    """The execution as text: stages, actions, durations, errors."""
    ex = execution
    lines = [f"execution {ex.id} of {ex.pipeline.name}: {ex.status} in {ex.seconds:.1f} s"
             + (f" ({ex.retries} retr{'y' if ex.retries == 1 else 'ies'})" if ex.retries else "")]
    for s in execution.stages.values():
        lines.append(f"  {s.name:12} {s.status}")
        for a in s.actions.values():
            took = f"{a.last.seconds:5.1f} s" if a.last and a.last.end else ""
            note = a.error or ", ".join(f"{k}={v}" for k, v in a.summary.items() if isinstance(v, (str, int)))
            lines.append(f"    {a.name:14} {a.status:10} {took:8} {note[:160]}")
    return "\n".join(lines)


class PipelineView:
    """A view of a pipeline, or of one of its executions, that can redraw itself in place."""

    def __init__(self, pipeline: Any, execution: Any = None, *, every: float = 0.3):
        self.pipeline, self.execution, self.every = pipeline, execution, every
        self._handle = None
        self._last = 0.0

    def html(self) -> str:
        if self.execution is not None:
            return execution_html(self.execution)
        return pipeline_html(self.pipeline.definition)

    def _repr_html_(self) -> str:
        return self.html()

    def __str__(self) -> str:
        return str(self.execution) if self.execution is not None else f"pipeline {self.pipeline.name} (not run yet)"

    def show(self) -> PipelineView:
        """Display it (in a notebook; elsewhere print the text form)."""
        if in_notebook():
            from IPython.display import HTML, display

            self._handle = display(HTML(self.html()), display_id=True)
        else:
            print(self)
        return self

    def follow(self, execution: Any) -> PipelineView:
        """Show ``execution`` from now on (it calls :meth:`refresh` whenever something changes)."""
        self.execution, execution.view = execution, self
        self.refresh(force=True)
        return self

    def refresh(self, force: bool = True) -> None:
        """Redraw in place (at most every ``every`` seconds unless ``force``)."""
        if self._handle is None or (not force and time.monotonic() - self._last < self.every):
            return
        from IPython.display import HTML

        self._last = time.monotonic()
        self._handle.update(HTML(self.html()))


def timing_chart(execution: Any, *, title: str | None = None, save: str | None = None):
    """A Gantt chart of ``execution``: one row per action, one bar per attempt; returns the figure."""
    from ...ui.plots import finish, pyplot

    plt = pyplot()
    rows = [(s, a) for s in execution.stages.values() for a in s.actions.values()]
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.5 * len(rows)))
    from matplotlib.patches import Patch

    t0 = execution.start
    end = max([t.start - t0 + t.seconds for _, r in rows for t in r.attempts] + [0.1])
    for i, (stage, run) in enumerate(rows):
        for n, att in enumerate(run.attempts, 1):
            left, width = att.start - t0, max(att.seconds, end / 400)
            ax.barh(i, width, left=left, color=COLOURS.get(att.status, MUTED), height=0.6)
            label = f"{att.seconds:.1f} s" + (f" (attempt {n})" if len(run.attempts) > 1 else "")
            if width > end * 0.22:  # room inside the bar
                ax.annotate(label, (left + width / 2, i), ha="center", va="center", fontsize=8, color="white")
            elif len(run.attempts) > 1:  # a retry may follow at once: odd attempts above the bar, even below
                above = n % 2 == 1
                ax.annotate(label, (left, i - 0.32 if above else i + 0.32), fontsize=8, ha="left",  # y grows downwards
                            va="bottom" if above else "top")
            else:
                ax.annotate(label, (left + width, i), xytext=(3, 0), textcoords="offset points", fontsize=8,
                            va="center")
        if not run.attempts:
            ax.annotate("did not run", (0, i), xytext=(3, -3), textcoords="offset points", fontsize=8,
                        color=COLOURS["Idle"])
    bounds = [i for i in range(1, len(rows)) if rows[i][0] is not rows[i - 1][0]]
    for b in bounds:
        ax.axhline(b - 0.5, color=FAINT, linewidth=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{s.name} / {a.name}" for s, a in rows])
    ax.set_xlim(0, end * 1.2)
    ax.set_xlabel("seconds since the execution started")
    ax.legend(handles=[Patch(color=COLOURS[s], label=s.lower()) for s in ("Succeeded", "Failed")],
              loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(rows) < 4 else -0.2), ncol=2, fontsize=8,
              frameon=False)
    title = title or f"Pipeline {execution.pipeline.name}: execution {execution.id[:8]} ({execution.status})"
    return finish(plt, fig, ax, title, save)
