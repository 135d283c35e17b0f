"""A class of generated submissions for one assignment, with every student's expected grade known in advance.

Used by ``bench/grading.py`` (and checked by ``tests/grading/test_bench_grading.py``). Each notebook starts as
what students are given (the exercise that ``coursekit assign`` makes from the solution); then each
question's answer cell is one of:

* ``right``: the solution's own code (markers removed): full points;
* ``wrong``: the solution with one realistic mistake (``<`` for ``<=``, off by one, a swapped label,
  another letter): runs, but a check fails: zero;
* ``error``: the solution with a typo that raises (a misspelt name): zero;
* ``stub``: left as given (``raise NotImplementedError``, ``...``): zero.

The class is about a third full solutions, a third untouched exercises and a third partial (each
question drawn at random, at least one right and one not), seeded, so the same seed always gives
the same notebooks and the same expected gradebook. Every mistake is an edit of the solution's
text that must match: if the solution changes so that an edit no longer applies, generating fails
instead of silently producing right answers.
"""
from __future__ import annotations

import copy
import random
import re
from pathlib import Path

from coursekit.exercises import assign, notebooks
from coursekit.grading import scoring

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "09-cloud-computing"
KINDS = ("right", "wrong", "error", "stub")

#: question -> kind -> (old, new): the edit of the solution's code that makes that kind of answer.
EDITS = {
    "q1": {"wrong": ("<= cloud_monthly * month", "< cloud_monthly * month"),   # strictly cheaper: a month late
           "error": ("return month\n", "return months\n")},                       # NameError inside the function
    "q2": {"wrong": ("return servers", "return servers + 1"),                     # one server too many
           "error": ("cm.served_fraction(", "cm.serve_fraction(")},              # AttributeError
    "q3": {"wrong": ('patches its servers": "PaaS"', 'patches its servers": "SaaS"'),
           "error": ('"private",', 'private,')},                                  # NameError: private
    "q4": {"wrong": None,                                                         # another letter (see _wrong_letter)
           "error": ('q4 = "', 'q4 = ("')},                                       # SyntaxError
}


def solution(name: str = ASSIGNMENT) -> Path:
    return ROOT / "solutions" / f"{name}.ipynb"


answer_cells, unmarked = assign.answer_cells, assign.unmarked  # shared with the tests' class fixture


def _wrong_letter(right_source: str) -> str:
    ns: dict = {}
    exec(right_source, ns)  # noqa: S102 - the course's own solution
    return f"q4 = {next(x for x in 'abcd' if x != ns['q4'])!r}"


class Generator:
    """Answers of every kind for every question of one assignment, read once from its solution."""

    def __init__(self, name: str = ASSIGNMENT):
        self.name = name
        self.solution = notebooks.read(solution(name))
        self.points = {q.name: q.points for q in scoring.load_questions(solution(name)).values()}
        cells = answer_cells(self.solution)
        if set(cells) != set(self.points) or any(len(v) != 1 for v in cells.values()):
            raise RuntimeError(f"{name}: expected one answer cell per question, found {cells}")
        self.cell = {q: ids[0] for q, ids in cells.items()}
        by_id = {c.id: c for c in self.solution.cells}
        right = {q: unmarked(notebooks.source_of(by_id[cid])) for q, cid in self.cell.items()}
        self.sources: dict[str, dict[str, str]] = {}
        for q, src in right.items():
            self.sources[q] = {"right": src}
            for kind, edit in EDITS[q].items():
                if edit is None:
                    new = re.sub(r'^q4 = .*$', _wrong_letter(src), src, flags=re.MULTILINE)
                else:
                    old, repl = edit
                    if src.count(old) != 1:
                        raise RuntimeError(f"{name} {q}: the '{kind}' edit expects {old!r} once in the solution, "
                                           f"found it {src.count(old)} times: update bench/submissions.EDITS")
                    new = src.replace(old, repl)
                if new == src:
                    raise RuntimeError(f"{name} {q}: the '{kind}' answer is the solution itself")
                self.sources[q][kind] = new
        self.exercise = assign.make_exercise(copy.deepcopy(self.solution), source_name=f"solutions/{name}.ipynb",
                                             stem=name)

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def notebook(self, kinds: dict[str, str]):
        """A student's notebook: question -> kind (a question not named is left as the stub)."""
        nb = copy.deepcopy(self.exercise)
        for cell in nb.cells:
            for q, cid in self.cell.items():
                if cell.id == cid and kinds.get(q, "stub") != "stub":
                    cell.source = self.sources[q][kinds[q]]
        return nb

    def expected(self, kinds: dict[str, str]) -> dict:
        """The gradebook row this student must get: points per question and the total."""
        row = {q: (pts if kinds.get(q) == "right" else 0) for q, pts in self.points.items()}
        return {**row, "total": sum(row.values())}


def plan(gen: Generator, n: int, seed: int = 7) -> dict[str, dict[str, str]]:
    """student -> question -> kind, for ``n`` students: a third full, a third untouched, a third partial."""
    rng = random.Random(seed)
    roles = [("full", "untouched", "partial")[i % 3] for i in range(n)]
    rng.shuffle(roles)
    out = {}
    qs = list(gen.points)
    for i, role in enumerate(roles, 1):
        if role == "full":
            kinds = {q: "right" for q in qs}
        elif role == "untouched":
            kinds = {q: "stub" for q in qs}
        else:
            while True:
                kinds = {q: rng.choice(KINDS) for q in qs}
                if "right" in kinds.values() and set(kinds.values()) != {"right"}:
                    break
        out[f"s{i:03d}"] = kinds
    return out


def role(kinds: dict[str, str]) -> str:
    vals = set(kinds.values())
    return "full" if vals == {"right"} else "untouched" if vals == {"stub"} else "partial"


def write_class(folder: str | Path, n: int = 100, seed: int = 7, gen: Generator | None = None) -> dict[str, dict]:
    """Write ``<folder>/<student>/<assignment>.ipynb`` for ``n`` students; student -> expected row
    (points per question, ``total``, and ``kinds``: what each answer was made as)."""
    gen = gen or Generator()
    folder = Path(folder)
    expected = {}
    for student, kinds in plan(gen, n, seed).items():
        notebooks.write(gen.notebook(kinds), folder / student / f"{gen.name}.ipynb")
        expected[student] = {**gen.expected(kinds), "kinds": kinds}
    return expected
