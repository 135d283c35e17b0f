"""Foundation benchmarks, printed side by side as ratios (never asserted in tests).

    .venv/bin/python bench/run.py            # all
    .venv/bin/python bench/run.py --quick    # fewer repetitions

1. ``import coursekit`` (fresh interpreter) against a bare interpreter: target under 0.3 s.
2. A container run through coursekit (labels, tracking) against the same run through the
   docker SDK directly: target overhead at most 5 %.
3. ``coursekit images`` with every image present (fresh process): target under 1 s.
4. A buildspec run by coursekit's CodeBuild-style runner against the same commands in one
   ``docker run`` of the same image: target overhead under 0.5 s or 20 %, whichever is larger.
5. Grading one Dockerfile answer (build, run under limits, HTTP probe, clean-up) for a tiny
   busybox web server: reported, no reference.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def wall(cmd: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        out.append(time.perf_counter() - t0)
    return out


def row(label: str, ours: list[float], ref: list[float] | None, target: str) -> None:
    m = statistics.median(ours)
    if ref:
        r = statistics.median(ref)
        print(f"{label:<44} {m * 1000:9.1f} ms  vs {r * 1000:9.1f} ms  ratio {m / r:5.2f}   ({target})")
    else:
        print(f"{label:<44} {m * 1000:9.1f} ms                          ({target})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 5 if a.quick else 15

    print(f"{'measure':<44} {'coursekit':>12}     {'reference':>12}")
    bare = wall([PY, "-c", "pass"], n)
    imp = wall([PY, "-c", "import coursekit"], n)
    row("import coursekit (process, vs bare python)", imp, bare, "target: import itself < 300 ms")
    print(f"{'  import coursekit alone':<44} {(statistics.median(imp) - statistics.median(bare)) * 1000:9.1f} ms")

    from coursekit.docker import engine
    from coursekit.lesson import measure

    if engine.available():
        cl = engine.client()
        image = "coursekit/busybox:v1"
        sdk, ours = [], []
        for _ in range(2):  # warm both paths
            cl.containers.run(image, "true", remove=True)
            engine.run(image, "true")
        for _ in range(n * 2):  # interleaved, so drift hits both alike
            sdk += measure.repeat(lambda: cl.containers.run(image, "true", remove=True), 1, warmup=0)
            ours += measure.repeat(lambda: engine.run(image, "true"), 1, warmup=0)
        row("container run: coursekit vs docker SDK", ours, sdk, "target: ratio <= 1.05")
        row("coursekit images, all present (process)", wall([PY, "-m", "coursekit.cli", "images"], n), None,
            "target < 1000 ms")
        bench_buildrunner(max(3, n // 3))
        bench_tryout(max(3, n // 3))
    else:
        print(f"engine benchmarks skipped: {engine.status().reason}")


BUILD_COMMANDS = {"install": ["echo installing"], "pre_build": ["cd /tmp && export GREETING=hello"],
                  "build": ["python3 -c 'print(sum(range(10**6)))'"], "post_build": ["echo \"$GREETING from $PWD\""]}


def bench_buildrunner(n: int) -> None:
    """The runner's phases, one shell, markers and clean-up against one plain docker run of the same commands."""
    import tempfile

    import yaml

    from coursekit.cicd.build import runner as buildrunner
    from coursekit.docker import engine, images
    from coursekit.lesson import measure

    image = buildrunner.DEFAULT_IMAGE
    images.ensure([image], progress=lambda s: None)
    spec = yaml.safe_dump({"version": 0.2, "phases": {k: {"commands": v} for k, v in BUILD_COMMANDS.items()}})
    script = " && ".join(c for cmds in BUILD_COMMANDS.values() for c in cmds)
    with tempfile.TemporaryDirectory() as src:
        (Path(src) / "buildspec.yml").write_text(spec)
        runner, direct = [], []
        buildrunner.run(src, sandbox=False, progress=None)  # warm
        engine.run(image, ["bash", "-c", script])
        for _ in range(n):
            runner += measure.repeat(lambda: buildrunner.run(src, sandbox=False, progress=None), 1, warmup=0)
            direct += measure.repeat(lambda: engine.run(image, ["bash", "-c", script]), 1, warmup=0)
    over = statistics.median(runner) - statistics.median(direct)
    row("buildspec run vs one docker run", runner, direct,
        f"overhead {over * 1000:.0f} ms; target < max(500 ms, 20 %)")


def bench_tryout(n: int) -> None:
    from coursekit.dockerfile import tryout as da
    from coursekit.lesson import measure

    df = ("FROM coursekit/busybox:v1\nRUN mkdir -p /www && echo hi > /www/index.html\n"
          "CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n")
    times = measure.repeat(lambda: da.try_dockerfile(df, port=8000), n, warmup=1)
    row("grade one Dockerfile answer (busybox server)", times, None, "reported")


if __name__ == "__main__":
    main()
