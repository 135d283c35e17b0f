"""Grading answers that drive Docker: the same class graded with and without its engine questions.

    .venv/bin/python bench/engine_grading.py                   # 30 students, 2 workers
    .venv/bin/python bench/engine_grading.py --students 10 --workers 2

The class is exercise 04 (containers: a web server published on a port, PostgreSQL on a volume,
restart policies, a volume question), every student handing in the reference solution. It is
graded twice by ``coursekit grade`` with the same workers:

* **with its engine**: every question answered, so each sandbox gets its gate, and its
  containers (the web server, two PostgreSQL servers) run on the engine in parallel with the
  other sandboxes';
* **without**: the same notebooks with the two Docker answers left as the exercise gives them,
  so their check helpers return at once; what remains is the sandbox, the kernel and the
  non-Docker questions.

It prints the wall time and submissions per minute of each, their ratio (what the Docker work
costs on top), the median per-submission sandbox time, the median time each question's answer took
to collect in the sandbox (the check helper's Docker work, for the engine questions), and checks that the first class scored full
marks and the second exactly the non-Docker points. Measured, never asserted in the tests.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ASSIGNMENT = "04-containers"


def make_class(folder: Path, n: int, engine_answers: bool) -> None:
    """``n`` students handing in the solution (with or without its Docker answers' code)."""
    import copy

    from coursekit.exercises import assign, notebooks
    from coursekit.grading import scoring

    solution = ROOT / "solutions" / f"{ASSIGNMENT}.ipynb"
    sol = notebooks.read(solution)
    questions = scoring.load_questions(solution)
    wanted = [q for q in questions if engine_answers or not questions[q].needs_engine]
    cells = assign.answer_cells(sol)
    by_id = {c.id: c for c in sol.cells}
    for i in range(n):
        nb = assign.make_exercise(copy.deepcopy(sol), source_name=f"solutions/{solution.name}", stem=solution.stem)
        code = {cid: assign.unmarked(notebooks.source_of(by_id[cid])) for q in wanted for cid in cells[q]}
        for cell in nb.cells:
            if cell.get("id") in code:
                cell.source = code[cell.id]
        notebooks.write(nb, folder / f"student{i:03d}" / solution.name)


def grade(folder: Path, out: Path, workers: int):
    from coursekit.grading import classroom

    t0 = time.perf_counter()
    result = classroom.grade(folder, ROOT / "solutions" / f"{ASSIGNMENT}.ipynb", out, workers=workers, progress=None)
    return result, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    from coursekit.grading import image, scoring

    questions = scoring.load_questions(ROOT / "solutions" / f"{ASSIGNMENT}.ipynb")
    full = sum(q.points for q in questions.values())
    plain = sum(q.points for q in questions.values() if not q.needs_engine)
    t0 = time.perf_counter()
    image.grader_image()
    print(f"grading image ready in {time.perf_counter() - t0:.1f} s (not counted)\n")
    rows, ok, per_q = [], True, {}
    work = Path(tempfile.mkdtemp(prefix="coursekit-bench-engine-"))
    try:
        for label, engine_answers, expected in (("with its engine questions", True, full),
                                                ("without (non-engine questions only)", False, plain)):
            subs = work / label.split()[0] / "subs"
            make_class(subs, a.students, engine_answers)
            result, wall = grade(subs, subs.parent / "out", a.workers)
            scores = [r.score for r in result.results.values()]
            sandbox = [r.timings.get("sandbox", 0) for r in result.results.values()]
            right = all(s == expected for s in scores)
            ok &= right
            rows.append((label, wall, statistics.median(sandbox), right, expected))
            per_q[label] = {q: statistics.median(r.timings.get(f"answer:{q}", 0) for r in result.results.values())
                            for q in questions}
            per_q[label]["cells"] = statistics.median(r.timings.get("cells", 0) for r in result.results.values())
        print(f"{'class of ' + str(a.students) + ', ' + str(a.workers) + ' workers':<40} {'wall':>8} {'subs/min':>9} "
              f"{'sandbox (median)':>17}  scores")
        for label, wall, sandbox, right, expected in rows:
            print(f"{label:<40} {wall:7.1f}s {a.students / wall * 60:9.1f} {sandbox:16.1f}s  "
                  f"{'all ' + format(expected, 'g') if right else 'WRONG'}")
        print("\nper question, median seconds to collect the answer (its check helper's work) in the sandbox:")
        print(f"{'':<40} {'cells':>14} " + " ".join(f"{q + (' (engine)' if questions[q].needs_engine else ''):>14}"
                                                  for q in questions))
        for label, times in per_q.items():
            print(f"{label:<40} {times['cells']:13.2f}s " + " ".join(f"{times[q]:13.2f}s" for q in questions))
        print("(cells: replaying the notebook's own cells, which start its containers too; each question: "
              "collecting its answer, the check helper's Docker work)")
        print(f"\nratio (with / without): {rows[0][1] / rows[1][1]:.2f}: what the Docker questions cost on top "
              f"(the web server and two PostgreSQL servers per submission, through its gate)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
