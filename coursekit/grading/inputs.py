"""What goes into a grading sandbox: the assignment, a student's submission, and the request built from them.

:func:`load_assignment` reads a solution notebook once: its questions (with their hidden
checks) stay on the host; only the *public* check cells of the exercise generated from it
(:func:`coursekit.exercises.assign.make_exercise`) and each question's answer expression go into the
sandbox. :class:`Submission` is one student's notebook and the regular files beside it.
:func:`build_request` makes the request the worker (:mod:`coursekit.grading.worker`) runs:
the student's code cells with the exercise's public check cells in place of the student's
copies (:func:`cells_to_run`), the files (base64), the answer expressions and the limits the
worker enforces itself. It is the same request whether it travels over a container's stdin
(:mod:`coursekit.grading.local`) or through a work list (:mod:`coursekit.grading.queue`); the host
adds a fresh random nonce to it either way.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..exercises import notebooks
from .limits import GradeLimits
from .scoring import load_questions


@dataclass
class Assignment:
    """A solution notebook, read once: its questions (with hidden checks) stay on the host."""

    solution: Path
    name: str
    questions: dict                     # name -> coursekit.exercises.checks.Question (trusted, with hidden checks)
    check_cells: list                   # [(cell id, public source, id of the exercise cell before it)]
    run_fingerprint: str = ""           # what goes into the sandbox (public checks + answer expressions)
    score_fingerprint: str = ""         # what scores it (the solution file)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions.values())

    @property
    def engine(self) -> bool:
        """Whether a submission's sandbox gets an engine (its gate): some answer drives Docker, and the gate
        serves everything such answers need."""
        from .gate import SERVES

        driving = [q for q in self.questions.values() if q.needs_engine]
        return bool(driving) and all(set(q.needs) <= SERVES for q in driving)


def load_assignment(solution: str | os.PathLike) -> Assignment:
    """Read a solution notebook: questions on the host, public check cells for the sandbox."""
    from ..exercises import assign

    path = Path(solution)
    questions = load_questions(path)
    exercise = assign.make_exercise(notebooks.read(path), source_name=f"solutions/{path.name}", stem=path.stem)
    cells, before = [], None
    for cell in exercise.cells:
        if cell.cell_type == "code" and assign.CHECKS_TAG in notebooks.tags_of(cell):
            cells.append((cell.get("id"), notebooks.source_of(cell), before))
        before = cell.get("id")
    inside = json.dumps([cells, [[q.name, q.answer] for q in questions.values()]])
    return Assignment(path, path.stem, questions, cells,
                      hashlib.sha256(inside.encode()).hexdigest()[:16],
                      hashlib.sha256(path.read_bytes()).hexdigest()[:16])


# --------------------------------------------------------------------------- the submission


@dataclass
class Submission:
    """One student's work: a notebook, and the files beside it when it came in a folder."""

    student: str
    notebook: Optional[Path]
    folder: Optional[Path] = None
    problem: str = ""  # why there is no notebook to grade

    def files(self) -> dict[str, Path]:
        """Regular files beside the notebook (relative path -> path): never a symlink, a hidden file or folder."""
        if self.folder is None:
            return {}
        out = {}
        for top, dirs, names in os.walk(self.folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(top, d)))
            for name in sorted(names):
                p = Path(top, name)
                if name.startswith(".") or p.is_symlink() or not p.is_file() or p == self.notebook:
                    continue
                out[p.relative_to(self.folder).as_posix()] = p
        return out

    def fingerprint(self) -> str:
        """Changes when the notebook or a file beside it changes."""
        h = hashlib.sha256()
        for rel, p in [("", self.notebook)] + sorted(self.files().items()):
            if p is not None:
                h.update(rel.encode() + b"\0")
                with contextlib.suppress(OSError), open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        return h.hexdigest()[:16]


def cells_to_run(nb, assignment: Assignment) -> list[dict]:
    """The cells the sandbox runs: the student's code, the exercise's public check cells in place of theirs."""
    from ..exercises import assign

    public = {cid: src for cid, src, _ in assignment.check_cells}
    run: list[dict] = []
    placed: set = set()
    for index, cell in enumerate(nb.cells, 1):
        if cell.get("cell_type") != "code":
            continue
        cid = cell.get("id")
        if cid in public or assign.CHECKS_TAG in notebooks.tags_of(cell):
            if cid in public and cid not in placed:
                run.append({"source": public[cid], "index": index, "kind": "checks", "id": cid})
                placed.add(cid)
            continue  # the student's own copy of a check cell never runs
        source = notebooks.source_of(cell)
        if source.strip():
            run.append({"source": source, "index": index, "kind": "student", "id": cid})
    for cid, source, before in assignment.check_cells:  # check cells the student deleted
        if cid in placed:
            continue
        at = next((i + 1 for i in range(len(run) - 1, -1, -1) if run[i]["id"] == before), len(run))
        run.insert(at, {"source": source, "index": 0, "kind": "checks", "id": cid})
        placed.add(cid)
    return run


def build_request(submission: Submission, assignment: Assignment, limits: GradeLimits) -> dict:
    """The request the worker gets (without the nonce); raises NotebookError or TooBig."""
    if submission.notebook.stat().st_size > 5 * limits.submission_bytes:  # outputs count here, not below
        raise TooBig(f"the notebook file is {submission.notebook.stat().st_size / 1e6:.0f} MB; the limit is "
                     f"{5 * limits.submission_bytes / 1e6:.0f} MB (clear its outputs and hand it in again)")
    nb = notebooks.read(submission.notebook)
    cells = cells_to_run(nb, assignment)
    files, size = {}, sum(len(c["source"]) for c in cells)
    for rel, path in submission.files().items():
        size += path.stat().st_size
        if size > limits.submission_bytes:
            break
        files[rel] = base64.b64encode(path.read_bytes()).decode()
    if size > limits.submission_bytes:
        raise TooBig(f"the submission is {size / 1e6:.1f} MB or more (code cells and the files beside the "
                     f"notebook); the limit is {limits.submission_bytes / 1e6:.0f} MB")
    return {"cells": [{k: c[k] for k in ("source", "index", "kind")} for c in cells], "files": files,
            "answers": [[q.name, q.answer] for q in assignment.questions.values()],
            "engine": assignment.engine, "limits": limits.to_dict()}


class TooBig(Exception):
    """The submission is over :attr:`~coursekit.grading.limits.GradeLimits.submission_bytes`."""
