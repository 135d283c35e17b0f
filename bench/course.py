"""The course-wide benchmark: every figure side by side in one run (never asserted in tests).

    .venv/bin/python bench/course.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python bench/course.py --quick    # fewer repetitions; lessons still run once per mode

1. Each lesson in notebooks/ executed top to bottom (nbclient, fresh kernel) in full mode and in
   no-engine mode, slowest first. Target: every lesson under 60 s in full mode with images present.
2. A container run through coursekit against the same run through the docker SDK directly.
3. ``check`` latency (median, p95) for a Docker question (exercise 02 q1: the API version over
   the raw socket) and an AWS question (exercise 09 q1: a pure-Python model) in a live kernel.
   Target: median under 150 ms for questions that need no engine.
4. The course's images: size here, and the official image's size where that image is on this
   engine (only then is it known: nothing is looked up online).
5. Container start against VM boot (lesson 01's measurement): medians and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run import row  # noqa: E402  (the same side-by-side printing as bench/run.py)


def run_notebook(path: Path, no_engine: bool) -> tuple[float, str]:
    """Execute a notebook in a fresh kernel; (seconds, "" or the first error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    saved = os.environ.get("COURSEKIT_NO_ENGINE")
    if no_engine:
        os.environ["COURSEKIT_NO_ENGINE"] = "1"
    else:
        os.environ.pop("COURSEKIT_NO_ENGINE", None)
    try:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute(stderr=subprocess.DEVNULL)
            err = ""
        except CellExecutionError as exc:
            err = str(exc).strip().splitlines()[-1][:100]
        return time.perf_counter() - t0, err
    finally:
        if saved is None:
            os.environ.pop("COURSEKIT_NO_ENGINE", None)
        else:
            os.environ["COURSEKIT_NO_ENGINE"] = saved


def lessons(engine_ok: bool) -> None:
    rows = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        full = run_notebook(path, no_engine=False) if engine_ok else (float("nan"), "no engine")
        none = run_notebook(path, no_engine=True)
        rows.append((path.stem, full, none))
        print(f"  ran {path.stem}: full {full[0]:.1f} s, no engine {none[0]:.1f} s", flush=True)
    print(f"\n{'lesson (slowest first in full mode)':<36} {'full':>9} {'no engine':>10}   target: full < 60 s")
    for stem, (f, ferr), (n, nerr) in sorted(rows, key=lambda r: -r[1][0] if r[1][0] == r[1][0] else 0):
        flag = "" if f != f or f < 60 else "  OVER"
        notes = "; ".join(x for x in (ferr and f"full: {ferr}", nerr and f"no engine: {nerr}") if x)
        print(f"{stem:<36} {f:8.1f}s {n:9.1f}s{flag}  {notes}")
    print(f"{'whole course':<36} {sum(r[1][0] for r in rows):8.1f}s {sum(r[2][0] for r in rows):9.1f}s")


CHECK_TIMER = '''
import json, statistics, time
import coursekit as ck
_t = []
for _ in range({n}):
    _s = time.perf_counter(); ck.check({q!r}); _t.append(time.perf_counter() - _s)
print("CHECK-TIMES", json.dumps(_t))
'''


def check_latency(solution: str, question: str, n: int) -> list[float]:
    """Run a solution notebook in a kernel, then time check(question) n times in that kernel."""
    import json

    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "solutions" / solution
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_TIMER.format(n=n, q=question)))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   allow_errors=True).execute(stderr=subprocess.DEVNULL)
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("CHECK-TIMES "):
                return json.loads(line.split(" ", 1)[1])
    raise RuntimeError(f"no timings from {solution}: {nb.cells[-1].get('outputs')}")


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.95 * len(xs))) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-lessons", action="store_true", help="everything but executing the lessons")
    a = ap.parse_args()
    n = 5 if a.quick else 15

    from coursekit.docker import engine, images
    from coursekit.lesson import measure
    from coursekit.lessons import vm

    engine_ok = engine.available()
    print(f"engine: {'yes' if engine_ok else 'no: ' + engine.status().reason}")
    if not a.skip_lessons:
        print("\n1. lessons, each in a fresh kernel")
        lessons(engine_ok)

    print(f"\n{'measure':<44} {'coursekit':>12}     {'reference':>12}")
    if engine_ok:
        cl, image = engine.client(), "coursekit/busybox:v1"
        sdk, ours = [], []
        for _ in range(n):
            sdk += measure.repeat(lambda: cl.containers.run(image, "true", remove=True), 1, warmup=0)
            ours += measure.repeat(lambda: engine.run(image, "true"), 1, warmup=0)
        row("2. container run: coursekit vs docker SDK", ours, sdk, "target: ratio <= 1.05")

    for label, sol, q, target in (("3. check() on a Docker question (02 q1)", "02-docker-engine.ipynb", "q1",
                                   "reported"),
                                  ("3. check() on a model question (09 q1)", "09-cloud-computing.ipynb", "q1",
                                   "target: median < 150 ms")):
        if "Docker" in label and not engine_ok:
            continue
        t = check_latency(sol, q, n * 2)
        print(f"{label:<44} {statistics.median(t) * 1000:9.1f} ms  p95 {p95(t) * 1000:7.1f} ms      ({target})")

    if engine_ok:
        print("\n4. the course's images")
        here = images.present()
        cl = engine.client()
        for name, img in images.catalog().items():
            size = (here.get(name) or {}).get("size_mb")
            try:
                official = f"{cl.images.get(img.upstream).attrs['Size'] / 1e6:8.1f} MB"
            except Exception:
                official = "not on this engine (size unknown here)"
            print(f"  {name:<28} {size if size is not None else '?':>8} MB   official {img.upstream}: {official}")

        st = vm.status()
        print()
        if st.ok:
            boots = vm.measure(max(3, n // 3))
            starts = measure.container_starts(n)
            row("5. VM boot vs container start", boots, starts, f"the VM boots via {st.accel}")
        else:
            print(f"5. VM boot: cannot boot here ({st.reason})")


if __name__ == "__main__":
    main()
