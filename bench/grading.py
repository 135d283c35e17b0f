"""Grading a class: coursekit (sandboxed, parallel) against nbgrader's autograde (unsandboxed, serial).

    .venv/bin/python bench/grading.py                      # 100 students, workers = cores
    .venv/bin/python bench/grading.py --students 30 --workers 2

What is compared. The same generated class (``bench/submissions.py``: 100 submissions of exercise
09-cloud-computing, about a third full solutions, a third untouched, a third partial, seeded, every
student's expected points known in advance) is graded twice on this machine, one grader after the
other:

* by ``coursekit.grading.classroom.grade``: each submission in its own container (no network, memory, PID and
  CPU caps, read-only root, non-root user, no capabilities), ``--workers`` at a time (default: the
  number of cores); the checks run outside the sandbox on the answers it hands out as JSON;
* by ``nbgrader autograde`` 0.9 (installed once in a separate environment, see
  ``bench/nbgrader_course.py``), in a real nbgrader course: a source notebook whose autograder test
  cells assert the question's own public and hidden checks for the same points, ``generate_assignment``,
  the 100 notebooks under ``submitted/``, then autograde, which runs them one after the other.

Why it is fair. Same notebooks (the nbgrader copies differ only in nbgrader's cell metadata), same
checks, same machine, same Python, the same coursekit imported by the student code, no engine for
the student code in either (``COURSEKIT_NO_ENGINE=1``, as in the sandbox). Each grader's set-up is
done first and reported apart, excluded from throughput: nbgrader's environment and
``generate_assignment``; coursekit's grading image (built when missing) and one warm-up submission.
Throughput is submissions divided by the wall time of one grading command (``grade(...)`` /
``nbgrader autograde``), which includes each tool's own bookkeeping (gradebook, feedback, database).

What is not equal. nbgrader runs every student's code as the grader's own user, in the grader's
environment, with no limits: one hostile notebook can read the hidden tests, rewrite the gradebook,
or hang or exhaust the machine. coursekit pays for its sandbox (a container per submission, a fresh
kernel inside it, the answers carried out as JSON) and gets its speed back from running submissions
in parallel. Two principled differences in scores are possible (none is expected for this class):
coursekit evaluates the answers after the whole notebook has run, nbgrader at its test cell; and
nbgrader gives zero to a test cell that writes to stderr even when its asserts pass.

Exit status: non-zero when coursekit's gradebook differs from the expected one in any cell.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import nbgrader_course as nbg  # noqa: E402
import submissions  # noqa: E402


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def compare(expected: dict, got: dict, who: str) -> dict[str, str]:
    """student -> what differs, for every student whose points (per question or total) are not the expected ones."""
    bad = {}
    for student, want in expected.items():
        have = got.get(student)
        if have is None:
            bad[student] = f"no grade from {who} (expected {want['total']:g})"
            continue
        row = {**want["points"], "total": want["total"]}
        diff = [f"{k} {have.get(k)!r} != {v:g}" for k, v in row.items()
                if have.get(k) in (None, "") or abs(float(have[k]) - v) > 1e-9]
        if diff:
            bad[student] = "; ".join(diff)
    bad.update({s: f"graded by {who} but not in the class" for s in sorted(set(got) - set(expected))})
    return bad


def loudly(title: str, bad: dict, expected: dict) -> None:
    print("\n" + "!" * 100 + f"\n!!! {title}: {len(bad)} student(s)\n" + "!" * 100)
    for student, what in list(bad.items())[:40]:
        kinds = ", ".join(f"{q} {k}" for q, k in expected.get(student, {}).get("kinds", {}).items())
        print(f"!!! {student} ({kinds}): {what}")
    if len(bad) > 40:
        print(f"!!! ... and {len(bad) - 40} more")


def run_coursekit(subs: Path, out: Path, workers: int, n: int, every: int) -> tuple:
    from coursekit.grading.classroom import grade
    from coursekit.grading.limits import GradeLimits

    def progress(line: str) -> None:
        m = re.match(r"\[(\d+)/(\d+)\] ", line)
        if not m or int(m.group(1)) % every == 0 or m.group(1) == m.group(2):
            print(f"  {line[:150]}", flush=True)

    t0 = time.monotonic()
    res = grade(subs, submissions.solution(), out, workers=workers, limits=GradeLimits(), progress=progress)
    wall = time.monotonic() - t0
    with open(out / "gradebook.csv", newline="") as fh:
        book = {row["student"]: row for row in csv.DictReader(fh)}
    got = {s: {k: v for k, v in row.items() if k not in ("student", "notes", "max")} for s, row in book.items()}
    not_graded = {s: f"status {row['status']} ({row['notes'][:100]})" for s, row in book.items()
                  if row["status"] != "graded"}
    return res, wall, got, not_graded


def warm_up(tmp: Path, gen) -> float:
    """Grade one submission (builds the grading image if missing): coursekit's set-up, outside throughput."""
    from coursekit.grading.classroom import grade

    t0 = time.monotonic()
    submissions.write_class(tmp / "warm", n=1, gen=gen)
    grade(tmp / "warm", submissions.solution(), tmp / "warm-out", workers=1, progress=None)
    return time.monotonic() - t0


def leftovers() -> str:
    """What this process left on the engine (its own session's labels): should be nothing."""
    from coursekit.docker import engine

    if not engine.available():
        return "engine not answering"
    cl, f = engine.client(), engine.ours_filter(engine.SESSION_ID)
    found = {"containers": cl.containers.list(all=True, filters=f), "networks": cl.networks.list(filters=f),
             "volumes": cl.volumes.list(filters=f)}
    left = {k: len(v) for k, v in found.items() if v}
    return "nothing" if not left else "LEFT: " + ", ".join(f"{v} {k}" for k, v in left.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="coursekit's sandboxes at a time")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--venv", type=Path, default=nbg.VENV, help="nbgrader's environment (made once, reused)")
    a = ap.parse_args()
    n, every = a.students, max(1, a.students // 10)
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="coursekit-bench-grading-"))
    try:
        gen = submissions.Generator()
        expected = submissions.write_class(tmp / "subs", n=n, seed=a.seed, gen=gen)
        for want in expected.values():
            want["points"] = {q: want[q] for q in gen.points}
        roles = Counter(submissions.role(w["kinds"]) for w in expected.values())
        print(f"class: {n} submissions of {gen.name} (max {gen.max_score:g}): {roles['full']} full, "
              f"{roles['untouched']} untouched, {roles['partial']} partial; mean expected "
              f"{statistics.mean(w['total'] for w in expected.values()):.2f}; {cores} cores\n")

        print("set-up (not counted in throughput)")
        py, venv_s, made = nbg.ensure_venv(a.venv)
        venv_note = (f"{venv_s:.1f} s (created now)" if made else
                     f"reused (it took {venv_s:.1f} s to create)" if venv_s else "reused")
        print(f"  nbgrader {nbg.version(py)} in {a.venv}: {venv_note}")
        course = tmp / "nbgrader"
        nbg.build_course(course, gen.name, gen.solution, tmp / "subs", sorted(expected))
        t0 = time.monotonic()
        code, lines = nbg.nbgrader(py, course, "generate_assignment", gen.name, "--force")
        gen_s = time.monotonic() - t0
        if code:
            print("\n".join(lines[-30:]))
            raise SystemExit("nbgrader generate_assignment failed (its log is above)")
        print(f"  nbgrader generate_assignment: {gen_s:.1f} s")
        warm_s = warm_up(tmp, gen)
        print(f"  coursekit grading image + one warm-up submission: {warm_s:.1f} s\n")

        print(f"coursekit: grading {n} submissions, sandboxed, {a.workers} at a time")
        res, ck_wall, ck_got, not_graded = run_coursekit(tmp / "subs", tmp / "coursekit-out", a.workers, n, every)
        ck_bad = {**compare(expected, ck_got, "coursekit"), **not_graded}
        overhead = [r.timings["start_to_first_cell"] for r in res.results.values()
                    if "start_to_first_cell" in r.timings]
        per_sub = [r.seconds for r in res.results.values()]

        print(f"\nnbgrader: autograding {n} submissions, unsandboxed, one after the other")
        t0 = time.monotonic()
        code, lines = nbg.autograde(py, course, gen.name, n, every)
        nb_wall = time.monotonic() - t0
        if code:
            print("\n".join(lines[-30:]))
            print(f"!!! nbgrader autograde exited with {code}")
        nb_scores = nbg.scores(py, course, gen.name)
        nb_got = {s: {**v["questions"], "total": v["total"]} for s, v in nb_scores.items()}
        nb_bad = compare(expected, nb_got, "nbgrader")
        warned = sum("has changed" in line for line in lines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    left = leftovers()

    ck_rate, nb_rate = n / ck_wall * 60, n / nb_wall * 60
    ratio = ck_rate / nb_rate
    w = 34
    print(f"\nthe same {n} submissions of {gen.name}, one grader after the other, on this machine")
    print(f"{'':<{w}} {'coursekit':>26} {'nbgrader':>26}")
    print(f"{'how':<{w}} {f'sandboxed, {a.workers} workers':>26} {'unsandboxed, serial':>26}")
    print(f"{'wall time':<{w}} {ck_wall:>24.1f} s {nb_wall:>24.1f} s")
    print(f"{'submissions per minute':<{w}} {ck_rate:>26.1f} {nb_rate:>26.1f}")
    print(f"{'seconds per submission (wall/n)':<{w}} {ck_wall / n:>26.2f} {nb_wall / n:>26.2f}")
    print(f"{'gradebook = expected':<{w}} {f'{n - len(ck_bad)}/{n}':>26} {f'{n - len(nb_bad)}/{n}':>26}")
    flag = "met" if ratio >= 3 else "NOT met"
    print(f"{'throughput ratio coursekit/nbgrader':<{w}} {ratio:>25.2f}x   (target >= 3x: {flag})")
    print(f"{'sandbox: start to first cell':<{w}} median {statistics.median(overhead):.2f} s, "
          f"p95 {p95(overhead):.2f} s (n={len(overhead)})")
    print(f"{'one submission in its sandbox':<{w}} median {statistics.median(per_sub):.2f} s, "
          f"p95 {p95(per_sub):.2f} s (start to scored, one worker's view)")
    print(f"{'cores':<{w}} {cores}")
    print(f"{'set-up, excluded from the above':<{w}} nbgrader venv "
          f"{venv_note}, generate_assignment {gen_s:.1f} s; "
          f"coursekit image + warm-up {warm_s:.1f} s")
    print(f"{'left on the engine by this run':<{w}} {left}")
    if warned:
        print(f"(nbgrader warned {warned} times that a locked test cell had changed: the students' copies hold the "
              "public checks only; it puts its own source back, as coursekit does with its check cells)")

    if nb_bad:
        loudly("nbgrader's totals differ from the expected ones", nb_bad, expected)
    else:
        print(f"nbgrader's gradebook agrees with the expected one for all {n} students.")
    if ck_bad:
        loudly("COURSEKIT'S GRADEBOOK DIFFERS FROM THE EXPECTED ONE", ck_bad, expected)
        return 1
    print(f"coursekit's gradebook equals the expected one for all {n} students (every question, every total).")
    return 0 if left == "nothing" else 1


if __name__ == "__main__":
    sys.exit(main())
