"""coursekit.lessons.containers against the real engine: restart policies watched, limits enforced and
measured, and the plots drawn from what was measured."""
from __future__ import annotations

import pytest

from coursekit.lessons import containers
from coursekit.docker import engine

BUSYBOX, PYTHON = "coursekit/busybox:v1", "coursekit/python:3.11"
LESSON = "test-containers"
needs_engine = pytest.mark.engine


@needs_engine
def test_watch_sees_on_failure_retry_up_to_its_maximum_and_no_policy_never_restart():
    made = {
        "on-failure:2": engine.run(BUSYBOX, ["sh", "-c", "exit 3"], detach=True, lesson=LESSON,
                                   restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}),
        "on-failure, exit 0": engine.run(BUSYBOX, ["true"], detach=True, lesson=LESSON,
                                         restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}),
        "no policy": engine.run(BUSYBOX, ["sh", "-c", "exit 3"], detach=True, lesson=LESSON),
    }
    try:
        seen = containers.watch(made, seconds=20)
    finally:
        for c in made.values():
            c.remove(force=True)
    last = {name: samples[-1] for name, samples in seen.items()}
    assert (last["on-failure:2"].status, last["on-failure:2"].restarts, last["on-failure:2"].exit_code) == \
        ("exited", 2, 3)
    assert (last["on-failure, exit 0"].restarts, last["on-failure, exit 0"].exit_code) == (0, 0)
    assert last["no policy"].restarts == 0
    counts = [s.restarts for s in seen["on-failure:2"]]
    assert counts == sorted(counts), "RestartCount only grows"


@needs_engine
def test_memory_limit_kills_the_program_and_the_log_shows_usage_up_to_the_limit():
    c = engine.run(PYTHON, ["python", "-c", containers.MEMORY_HOG], detach=True, lesson=LESSON,
                   mem_limit="48m", memswap_limit="48m")
    try:
        c.wait(timeout=60)
        st = containers.state(c)
        points = containers.parse_memory_log(c.logs().decode())
    finally:
        c.remove(force=True)
    assert st["status"] == "exited" and st["exit_code"] == 137 and st["oom_killed"] is True
    assert len(points) >= 5
    used = [p[2] for p in points]
    assert used == sorted(used) and max(used) <= 48.0, used
    assert points[-1][1] >= 36, "the program got most of the 48 MiB before it was killed"


@needs_engine
def test_cpus_and_pids_limits_hold():
    out = engine.run(PYTHON, ["python", "-c", containers.CPU_BURN], lesson=LESSON, nano_cpus=250_000_000).decode()
    cpu, wall = map(float, out.split())
    assert cpu / wall < 0.4, f"with --cpus 0.25 the loop got {cpu} CPU seconds in {wall} s"
    out = engine.run(PYTHON, ["python", "-c", containers.FORKER], lesson=LESSON, pids_limit=8).decode()
    assert out.startswith("fork refused after"), out
    assert int(out.split()[3]) < 8


@needs_engine
def test_state_follows_the_lifecycle():
    c = engine.create(BUSYBOX, ["sleep", "30"], lesson=LESSON)
    try:
        seen = [containers.state(c)["status"]]
        c.start()
        seen.append(containers.state(c)["status"])
        c.kill()
        c.wait(timeout=10)
        st = containers.state(c)
        seen.append(st["status"])
    finally:
        c.remove(force=True)
    assert seen == ["created", "running", "exited"] and st["exit_code"] == 137


def test_parse_memory_log_keeps_only_measurements():
    text = "0.000 0 1048576\nnot a line\n0.050 4 5242880\n1 2\n0.1 8 -1\n"
    pts = containers.parse_memory_log(text)
    assert pts[:2] == [(0.0, 0.0, 1.0), (0.05, 4.0, 5.0)]
    assert len(pts) == 3 and pts[2][2] != pts[2][2]  # -1 (no cgroup file) becomes NaN, not a fake value


def test_plots_draw_what_they_are_given(tmp_path):
    samples = {"always": [containers.Sample(0.0, "running", 0), containers.Sample(0.5, "restarting", 1),
                          containers.Sample(1.2, "running", 2)]}
    fig = containers.plot_restarts(samples, save=str(tmp_path / "r.png"))
    line = fig.axes[0].lines[0]
    assert list(line.get_ydata()) == [0, 1, 2] and (tmp_path / "r.png").stat().st_size > 1000
    fig = containers.plot_memory([(0, 0, 3.5), (0.05, 4, 7.5)], 64, exit_note="OOMKilled",
                                 save=str(tmp_path / "m.png"))
    assert [list(ln.get_ydata()) for ln in fig.axes[0].lines][:2] == [[3.5, 7.5], [0, 4]]
    fig = containers.plot_lifecycle([("created", "start", "running"), ("running", "stop", "exited"),
                                     ("exited", "start", "running"), ("running", "logs", "running")],
                                    save=str(tmp_path / "l.png"))
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"created", "running", "exited", "start", "stop"} <= texts
    assert "paused" not in texts and "logs" not in texts  # only states and changes that were observed
