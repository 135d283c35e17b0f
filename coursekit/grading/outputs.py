"""What ``coursekit grade`` writes: the gradebook, each student's feedback, and the class plot.

``gradebook.csv`` (one row per student: status, points per question, total, max, notes),
``feedback/<student>.md`` (each question's public checks passed or failed with their hints, how
many hidden checks passed but never their code, notes on cells that crashed or hung) and
``class.png`` (score distribution, per-question outcomes), from a
:class:`~coursekit.grading.classroom.ClassResult`.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ..exercises import checks as ck
from .protocol import GRADED
from .report import SubmissionGrade
from ..ui.palette import BAD, DARK, FAINT, GOLD, GOOD

GRADEBOOK, PLOT, FEEDBACK = "gradebook.csv", "class.png", "feedback"
NEEDS_ENGINE_NOTE = ("this answer's code talks to the Docker engine, and the grading sandbox has none (by design), "
                     "so it could not be run there: it scores 0 here; ask your instructor to grade it where an "
                     "engine runs")


def write_outputs(res, task) -> None:
    """gradebook.csv, feedback/<student>.md and class.png from ``res.results``."""
    names = list(task.questions)
    with open(res.out_dir / GRADEBOOK, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "status", *names, "total", "max", "notes"])
        for student, r in res.results.items():
            w.writerow([student, r.status, *[_num(r.questions[n].points) if n in r.questions else 0 for n in names],
                        _num(r.score), _num(task.max_score), r.message[:300]])
    used = set()
    for student, r in res.results.items():
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
        while slug in used:
            slug += "_"
        used.add(slug)
        (res.out_dir / FEEDBACK / f"{slug}.md").write_text(feedback(r, task))
    plot_class(res, task, res.out_dir / PLOT)


def _num(x: float) -> str:
    return f"{x:g}"


def feedback(r: SubmissionGrade, task) -> str:
    """One student's feedback in Markdown: public checks and hints, hidden checks counted, never shown."""
    lines = [f"# {task.name}: feedback for {r.student}", "",
             f"**Score: {r.score:g} / {r.max_score:g}** ({r.status})", ""]
    if r.status not in (GRADED,):
        lines += [f"Your notebook could not be graded: {r.message}", ""]
    if r.events:
        lines += ["Notes from the grader:", *[f"- {e}" for e in r.events[:10]], ""]
    notes = [c for c in r.cells if c.get("status") != "ok"]
    if notes:
        lines.append("Notes on your cells:")
        for c in notes[:15]:
            where = f"cell {c['index']}" if c.get("index") else "a check cell (put back by the grader)"
            head = c.get("head", "").replace("`", "'")
            where += f" (`{head}`)" if head else ""
            lines.append(f"- {where}: {c['status']}" + (f": {c['message']}" if c.get("message") else ""))
        lines.append("")
    for name, g in r.questions.items():
        q = task.questions.get(name)
        lines += [f"## {name} · {g.points:g} / {g.max_points:g} · {g.status}", ""]
        if q is not None and q.prompt:
            lines += [f"*{q.prompt}*", ""]
        lines += [f"- {m}" for m in g.messages]
        if g.status == ck.NEEDS_ENGINE and r.answers.get(name, {}).get("status") == ck.NEEDS_ENGINE:
            lines.append(f"- {NEEDS_ENGINE_NOTE}")
        lines += [f"- Hint: {h}" for h in getattr(g, "hints", [])]
        lines.append("")
    return "\n".join(lines)


def plot_class(res, task, path: Path) -> None:
    """class.png: how the class scored (left) and how each question went (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(res.results.values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    top = task.max_score
    scores = [r.score for r in results]
    bins = [x - 0.5 for x in range(int(top) + 2)]
    left.hist(scores, bins=bins, color=DARK, edgecolor="white")
    left.set(title=f"Scores ({len(results)} students, mean {sum(scores) / max(1, len(scores)):.1f} of {top:g})",
             xlabel="points", ylabel="students", xlim=(-0.5, top + 0.5))
    left.yaxis.get_major_locator().set_params(integer=True)
    kinds = [("passed", GOOD), ("failed", BAD), ("not attempted", FAINT), ("error, needs engine or not graded", GOLD)]
    names = list(task.questions)
    share = {k: [] for k, _ in kinds}
    for n in names:
        st = [r.questions[n].status if n in r.questions else "other" for r in results]
        for k, _ in kinds:
            hit = sum(s == k for s in st) if k in ("passed", "failed", "not attempted") else \
                sum(s not in ("passed", "failed", "not attempted") for s in st)
            share[k].append(100 * hit / max(1, len(st)))
    start = [0.0] * len(names)
    for k, colour in kinds:
        right.barh(names, share[k], left=start, color=colour, label=k)
        start = [a + b for a, b in zip(start, share[k])]
    right.invert_yaxis()
    right.set(title="Each question", xlabel="% of students", xlim=(0, 100))
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"{task.name}: the class at a glance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
