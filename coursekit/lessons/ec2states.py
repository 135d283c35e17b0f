"""The EC2 instance lifecycle as observed: record every state an instance is seen in, then draw it.

Lesson: ``11-ec2`` (section "The state machine"). A :class:`Recorder` wraps an EC2 client:
:meth:`Recorder.launch` and :meth:`Recorder.act` (``"stop"``, ``"start"``, ``"reboot"``,
``"terminate"``) call the API, note the state the *answer* reports for each instance, then
look again at once with ``describe_instances`` and note that too. :meth:`Recorder.transitions`
turns the notes into edges (from-state, to-state, what caused it, how often, how long after the
call it was seen), and :func:`draw` draws them over AWS's documented lifecycle
(:data:`AWS_TRANSITIONS`): an observed edge that AWS does not document is drawn in red.

Nothing here is invented: every edge drawn thick was seen in the sandbox. Against moto, the
answer of a call shows the in-between state (``pending``, ``stopping``, ``shutting-down``) and
the next ``describe_instances``, milliseconds later, already shows the end state: moto moves
instances instantly, where AWS takes seconds to minutes.

>>> sorted(s for s in STATES if s in BILLED)
['running']
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import LessonError
from ..ui.palette import BAD, BILLED_BOX, FAINT, GOOD, PLAIN_BOX

STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
#: AWS's documented transitions (EC2 User Guide, "instance state changes") and what causes each.
AWS_TRANSITIONS = {
    ("pending", "running"): "boot finishes",
    ("running", "stopping"): "stop",
    ("stopping", "stopped"): "shut down",
    ("stopped", "pending"): "start",
    ("running", "shutting-down"): "terminate",
    ("stopped", "shutting-down"): "terminate",
    ("shutting-down", "terminated"): "deleted",
    ("running", "running"): "reboot",
}
#: States in which instance usage is billed (EBS volumes and Elastic IPs are billed in any state).
BILLED = frozenset({"running"})
ACTIONS = {"start": "start_instances", "stop": "stop_instances", "reboot": "reboot_instances",
           "terminate": "terminate_instances"}
_ANSWER_KEY = {"start": "StartingInstances", "stop": "StoppingInstances", "terminate": "TerminatingInstances"}


@dataclass
class Observation:
    """One sighting: ``instance`` was in ``state``, as reported by ``source`` after ``action``."""

    instance: str
    state: str
    action: str     # the call that came before: "launch", "stop", ...
    source: str     # "answer" (the call's own response) or "describe" (describe_instances after it)
    seconds: float  # after the call's answer arrived (0 for the answer itself)


@dataclass
class Transition:
    """An edge seen at least once: ``before`` -> ``after``, caused by ``via``."""

    before: str
    after: str
    via: str
    count: int = 1
    seconds: list[float] = field(default_factory=list)

    @property
    def documented(self) -> bool:
        """True if AWS documents this transition."""
        return (self.before, self.after) in AWS_TRANSITIONS

    def __str__(self) -> str:
        when = f", seen {max(self.seconds) * 1000:.0f} ms after the answer" if max(self.seconds or [0]) else ""
        note = "" if self.documented else "   <- not a transition AWS allows"
        return f"{self.before:>13} -> {self.after:<13} via {self.via:<22} x{self.count}{when}{note}"


class Recorder:
    """Calls EC2 and notes every state it is told about. ``observations`` keeps them in order."""

    def __init__(self, ec2: Any):
        self.ec2 = ec2
        self.observations: list[Observation] = []

    def launch(self, **run_instances_args: Any) -> list[str]:
        """``run_instances(**args)``; notes the answer's states and a describe right after; the new IDs."""
        answer = self.ec2.run_instances(**{"MinCount": 1, "MaxCount": 1, **run_instances_args})
        t0 = time.perf_counter()
        ids = [i["InstanceId"] for i in answer["Instances"]]
        for inst in answer["Instances"]:
            self._note(inst["InstanceId"], inst["State"]["Name"], "launch", "answer", t0)
        self.look(ids, "launch", t0)
        return ids

    def act(self, action: str, ids: list[str] | str) -> dict[str, str]:
        """Stop, start, reboot or terminate ``ids``; notes what the answer and the next describe say.
        Returns each instance's state as described right after."""
        if action not in ACTIONS:
            raise LessonError(f"unknown action {action!r}", f"use one of: {', '.join(ACTIONS)}")
        ids = [ids] if isinstance(ids, str) else list(ids)
        answer = getattr(self.ec2, ACTIONS[action])(InstanceIds=ids)
        t0 = time.perf_counter()
        for item in answer.get(_ANSWER_KEY.get(action, ""), []):
            self._note(item["InstanceId"], item["CurrentState"]["Name"], action, "answer", t0,
                       before=item["PreviousState"]["Name"])
        return self.look(ids, action, t0)

    def look(self, ids: list[str], action: str = "look", t0: float | None = None) -> dict[str, str]:
        """``describe_instances`` for ``ids``; notes and returns each one's state."""
        t0 = time.perf_counter() if t0 is None else t0
        found = {}
        for res in self.ec2.describe_instances(InstanceIds=list(ids))["Reservations"]:
            for inst in res["Instances"]:
                found[inst["InstanceId"]] = inst["State"]["Name"]
                self._note(inst["InstanceId"], inst["State"]["Name"], action, "describe", t0)
        return found

    def _note(self, instance: str, state: str, action: str, source: str, t0: float, before: str = "") -> None:
        last = self.last_state(instance)
        if before and last is not None and before != last:
            # the answer says it came from a state we did not see: record that too
            self.observations.append(Observation(instance, before, action, "answer (previous state)", 0.0))
        seconds = 0.0 if source == "answer" else time.perf_counter() - t0
        self.observations.append(Observation(instance, state, action, source, seconds))

    def last_state(self, instance: str) -> str | None:
        return next((o.state for o in reversed(self.observations) if o.instance == instance), None)

    def transitions(self) -> list[Transition]:
        """Every distinct (before, after, via) seen, in the order first seen. ``via`` is the call
        for an answer, or "<call>, then describe" for a change first seen by describe_instances."""
        edges: dict[tuple[str, str, str], Transition] = {}
        last: dict[str, Observation] = {}
        for o in self.observations:
            prev = last.get(o.instance)
            last[o.instance] = o
            if prev is None or (prev.state == o.state and o.action != "reboot"):
                continue  # nothing changed (a reboot is the one change that keeps the state)
            via = o.action if o.source.startswith("answer") else f"{o.action}, then describe"
            key = (prev.state, o.state, via)
            if key in edges:
                edges[key].count += 1
                edges[key].seconds.append(o.seconds)
            else:
                edges[key] = Transition(prev.state, o.state, via, 1, [o.seconds])
        return list(edges.values())


# --------------------------------------------------------------------------- drawing
_POS = {"pending": (0.0, 2.0), "running": (3.0, 2.0), "stopping": (6.0, 2.0), "stopped": (9.0, 2.0),
        "shutting-down": (6.0, 0.0), "terminated": (9.0, 0.0)}
#: How much each edge bends (matplotlib's arc3 "rad"): the long ones go round the others.
_BEND = {("stopped", "pending"): 0.32, ("terminated", "pending"): -0.3}


def draw(transitions: list[Transition], *, title: str = "EC2 instance states seen in the sandbox"):
    """A matplotlib Figure: the six states, AWS's documented transitions in light grey, and every
    observed transition as a thick arrow (green if AWS documents it, red if not) labelled with
    what caused it and how often it was seen."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    fig = Figure(figsize=(10.5, 5.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set(xlim=(-1.0, 10.0), ylim=(-1.35, 4.0))
    ax.axis("off")

    def label_at(x: float, y: float, text: str, colour: str) -> None:
        ax.annotate(text, (x, y), ha="center", va="center", fontsize=8, color=colour,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))

    def arrow(a: str, b: str, colour: str, width: float, style: str, label: str, rad: float) -> None:
        (x1, y1), (x2, y2) = _POS[a], _POS[b]
        kw = dict(arrowstyle="-|>", color=colour, lw=width, linestyle=style)
        if a == b:  # a loop above the node
            ax.add_patch(FancyArrowPatch((x1 - 0.3, y1 + 0.3), (x1 + 0.3, y1 + 0.3), mutation_scale=13,
                                         connectionstyle="arc3,rad=-1.4", **kw))
            label_at(x1, y1 + 0.95, label, colour)
            return
        ax.add_patch(FancyArrowPatch((x1, y1), (x2, y2), connectionstyle=f"arc3,rad={rad}", mutation_scale=16,
                                     shrinkA=40, shrinkB=40, **kw))
        # matplotlib bends the arc towards (dy, -dx) * rad; put the label at the bend, a little outside
        dx, dy = x2 - x1, y2 - y1
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        nx, ny = dy / norm, -dx / norm
        off = rad * norm / 2 + (0.25 if rad >= 0 else -0.25) * (1 + label.count("\n") * 0.6)
        label_at((x1 + x2) / 2 + off * nx, (y1 + y2) / 2 + off * ny, label, colour)

    seen = {(t.before, t.after) for t in transitions}
    for (a, b), why in AWS_TRANSITIONS.items():
        if (a, b) not in seen:
            arrow(a, b, FAINT, 1.0, "--", f"{why} (not seen)", _BEND.get((a, b), 0.0))
    grouped: dict[tuple[str, str], list[Transition]] = {}
    for t in transitions:
        grouped.setdefault((t.before, t.after), []).append(t)
    for (a, b), ts in grouped.items():
        ok = (a, b) in AWS_TRANSITIONS
        arrow(a, b, GOOD if ok else BAD, 2.4, "-", "\n".join(f"{t.via} ×{t.count}" for t in ts),
              _BEND.get((a, b), 0.0 if ok else 0.25))
    for state, (x, y) in _POS.items():
        billed = state in BILLED
        ax.annotate(state + ("\n(billed)" if billed else ""), (x, y), ha="center", va="center", fontsize=10,
                    fontweight="bold" if billed else "normal",
                    bbox=dict(boxstyle="round,pad=0.45", fc=(BILLED_BOX if billed else PLAIN_BOX)[0],
                              ec=(BILLED_BOX if billed else PLAIN_BOX)[1], lw=1.5))
    ax.set_title(title + "\ngreen: seen, and AWS documents it · red: seen, but AWS does not allow it · "
                         "grey dashed: documented, not seen", fontsize=10)
    return fig


__all__ = ["STATES", "AWS_TRANSITIONS", "BILLED", "Observation", "Transition", "Recorder", "draw"]
