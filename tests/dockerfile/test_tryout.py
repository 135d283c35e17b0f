"""coursekit.dockerfile.tryout against the real engine: every verdict, produced for real.

Each test builds a tiny Dockerfile on the course's busybox image and checks the verdict and
the facts a learner would read. The ``tryout`` fixture records every image and container id
the build printed and, after the test, proves none of them (and no container of this
session) is left on the engine: that is the "always removes what it built" promise.
"""
from __future__ import annotations

import doctest
import os
import re
import socket
import subprocess
import sys
import threading
import uuid

import pytest

from coursekit.dockerfile import tryout as da
from coursekit.docker import engine
from coursekit.errors import DockerfileError, LimitsError
from coursekit.dockerfile.limits import Limits

pytestmark = pytest.mark.usefixtures("real_engine")
BUSYBOX = "coursekit/busybox:v1"
SERVE = f"""FROM {BUSYBOX}
COPY index.html /www/
CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]
"""
PAGE = {"index.html": "hello from the answer\n"}
WGET = "wget -q -O /dev/null http://127.0.0.1:8000/"


def _left(ids: set[str]) -> list[str]:
    """Which of these image/container ids (12 hex digits) still exist, plus containers these tests started."""
    api = engine.client().api
    images = {i["Id"].split(":")[1][:12] for i in api.images(all=True)}
    containers = {c["Id"][:12] for c in api.containers(all=True)}
    flt = engine.ours_filter(engine.SESSION_ID)
    flt["label"].append(f"{engine.LESSON}=test-answers")
    ours = api.containers(all=True, filters=flt)
    return sorted((ids & (images | containers)) | {c["Id"][:12] for c in ours})


@pytest.fixture
def tryout():
    """try_dockerfile with a progress recorder; afterwards nothing it printed may still exist."""
    seen: set[str] = set()
    lines: list[str] = []
    state = threading.local()  # per thread: is the next id borrowed (after FROM or a cache hit), not ours?

    def record(line: str) -> None:
        lines.append(line)
        text = line.strip()
        if re.match(r"Step \d+/\d+ : ", text):
            state.borrowed = bool(re.match(r"Step \d+/\d+ : FROM ", text, re.I))
        elif text == "---> Using cache":
            state.borrowed = True
        elif m := re.match(r"---> (?:Running in )?([0-9a-f]{12})$", text):
            if not getattr(state, "borrowed", False) or "Running in" in text:
                seen.add(m[1])

    def run(dockerfile: str, files=None, **kwargs):
        return da.try_dockerfile(dockerfile, files, progress=record, lesson="test-answers", **kwargs)

    run.lines, run.record = lines, record
    yield run
    assert _left(seen) == [], "a tryout left images or containers behind"


# --------------------------------------------------------------------------- it works


def test_a_server_that_answers_is_ok_with_status_body_size_and_user(tryout):
    res = tryout(SERVE, PAGE, port=8000)
    assert res.verdict == "ok" and res.ok, res.explain()
    assert (res.http_status, res.http_body) == (200, b"hello from the answer\n")
    assert 1_000_000 < res.image_size < 150_000_000
    assert res.user == "" and res.runs_as_root
    assert [(n, i) for n, i, _ in res.steps] == [(1, f"FROM {BUSYBOX}"), (2, "COPY index.html /www/"),
                                                 (3, 'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]')]
    assert res.build_seconds > 0 and res.run_seconds > 0
    assert "200" in res.message and "ok" in res._repr_html_()


def test_a_script_that_exits_0_is_ok_with_its_output(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"echo computed 42\"]\n")
    assert res.ok, res.explain()
    assert res.exit_code == 0 and "computed 42" in res.log_tail


def test_command_overrides_cmd(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"false\"]\n", command=["echo", "from the override"])
    assert res.ok and "from the override" in res.log_tail


def test_a_non_root_user_is_reported_and_still_serves_without_capabilities(tryout):
    res = tryout(SERVE.replace("CMD", "USER 65534:65534\nCMD"), PAGE, port=8000)
    assert res.ok, res.explain()
    assert res.user == "65534:65534" and res.runs_as_root is False


def test_the_sandbox_limits_are_really_applied(tryout):
    probe = ("grep -E 'CapEff|NoNewPrivs' /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
             "/sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; "
             "ls /sys/class/net")
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"{probe}\"]\n",
                 limits=Limits(memory="96m", pids=40))
    assert res.ok, res.explain()
    out = res.log_tail
    assert re.search(r"CapEff:\s+0+\n", out) and re.search(r"NoNewPrivs:\s+1", out)
    assert str(96 << 20) in out.split() and "40" in out.split()
    assert out.split()[-1] == "lo"  # a script gets no network at all


# --------------------------------------------------------------------------- it does not build


def test_a_syntax_error_names_its_line_and_builds_nothing(tryout):
    res = tryout(f"FROM {BUSYBOX}\nRUN echo one\nCOPPY index.html /www/\n", PAGE)
    assert res.verdict == "syntax error" and not res.ok
    assert res.line == 3 and "line 3" in res.message and "COPPY" in res.message
    assert res.build_seconds is None and tryout.lines == []
    assert tryout("RUN echo hi\n").verdict == "syntax error"  # no FROM


def test_without_an_engine_a_syntax_error_is_still_reported_and_a_build_says_why_not():
    code = ("from coursekit import dockerfile_answers as da\n"
            "from coursekit.errors import EngineUnavailable\n"
            "print(da.try_dockerfile('FROM coursekit/busybox:v1\\nRUNN x\\n').verdict)\n"
            "try:\n    da.try_dockerfile('FROM coursekit/busybox:v1\\n')\n"
            "except EngineUnavailable as e:\n    print('unavailable:', e.problem)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COURSEKIT_NO_ENGINE": "1"})
    assert out.stdout.splitlines() == ["syntax error", "unavailable: this session runs in no-engine mode "
                                       "(COURSEKIT_NO_ENGINE=1, as on Binder)"], out.stderr


def test_a_failing_step_is_named_with_its_number_line_and_output(tryout):
    res = tryout(f"FROM {BUSYBOX}\n\nRUN echo about to fail\nRUN echo checking && ls /nowhere\nCMD [\"true\"]\n")
    assert res.verdict == "does not build", res.explain()
    assert (res.step, res.line, res.instruction) == (3, 4, "RUN echo checking && ls /nowhere")
    assert "step 3" in res.message and "line 4" in res.message and res.exit_code == 1
    assert "checking" in res.log_tail and "/nowhere" in res.log_tail


def test_copy_of_a_file_not_in_the_context_says_which_file(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCOPY app.py /app/\n", PAGE)
    assert res.verdict == "does not build" and res.step == 2
    assert "app.py" in res.message and "index.html" in res.message and "files=" in res.hint


def test_from_an_image_not_on_the_engine_says_so_and_suggests_the_course_image(tryout):
    missing = f"nowhere.example/busybox:{uuid.uuid4().hex[:8]}"  # a name nobody sharing the engine has
    res = tryout(f"FROM {missing}\nCMD [\"true\"]\n")
    assert res.verdict == "does not build" and res.step == 1
    assert missing in res.message and "pulled" in res.message
    assert BUSYBOX in res.hint and res.build_seconds is None


def test_the_course_images_suggested_are_the_course_s_own_not_images_built_from_them(tryout):
    import io

    cl = engine.client()
    derived = f"ck-derived-{uuid.uuid4().hex[:8]}:1"  # built FROM a course image: it inherits its labels
    cl.images.build(fileobj=io.BytesIO(f"FROM {BUSYBOX}\nENV X=1\n".encode()), tag=derived, rm=True,
                    labels={engine.OWNER: engine.OWNER_VALUE})
    try:
        assert cl.images.get(derived).labels.get("org.coursekit.image") == BUSYBOX
        res = tryout(f"FROM unheard-of-{uuid.uuid4().hex[:8]}:1\nCMD [\"true\"]\n")
        assert res.verdict == "does not build"
        assert BUSYBOX in res.hint and derived not in res.hint, res.hint
    finally:
        cl.images.remove(derived, force=True)


def test_a_build_past_its_time_limit_is_stopped_and_nothing_is_left(tryout):
    res = tryout(f"FROM {BUSYBOX}\nRUN echo before\nRUN sleep 600\n", build_timeout=1.5)
    assert res.verdict == "build timed out", res.explain()
    assert res.step == 3 and "sleep 600" in res.message
    assert any("Running in" in line for line in tryout.lines)  # the step container existed; fixture: gone now


def test_a_build_stalled_outside_any_container_is_stopped_too(tryout):
    """An ADD whose download never ends has no step container to kill: we hang up on the engine."""
    with socket.socket() as silent:  # accepts the engine's connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/big.tar"
        res = tryout(f"FROM {BUSYBOX}\nRUN echo before\nADD {url} /big.tar\n", build_timeout=1,
                     limits=Limits(add_urls=True))
    assert res.verdict == "build timed out" and res.step == 3, res.explain()


def test_add_of_a_url_is_refused_by_default(tryout):
    res = tryout(f"FROM {BUSYBOX}\nADD http://127.0.0.1:5000/v2/_catalog /x\n")
    assert res.verdict == "does not build" and res.line == 2 and "URL" in res.message
    assert res.build_seconds is None


def test_an_interrupt_during_the_build_stops_it_and_leaves_nothing(tryout):
    def interrupt(line):
        if "Running in" in line and any("sleep 600" in seen for seen in tryout.lines):
            raise KeyboardInterrupt

    record = tryout.record

    def both(line):
        record(line)
        interrupt(line)

    with pytest.raises(KeyboardInterrupt):
        da.try_dockerfile(f"FROM {BUSYBOX}\nRUN echo before\nRUN sleep 600\n", progress=both)
    assert any("Running in" in line for line in tryout.lines)  # the fixture checks that its container is gone


# --------------------------------------------------------------------------- it runs badly


def test_a_server_that_exits_at_once_gives_its_exit_code_and_last_lines(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"echo starting; echo cannot open config >&2; exit 3\"]\n",
                 port=8000)
    assert res.verdict == "exits at once", res.explain()
    assert res.exit_code == 3 and "code 3" in res.message
    assert "cannot open config" in res.log_tail and "cannot open config" in res.explain()


def test_a_server_that_goes_to_the_background_is_told_to_stay_in_the_foreground(tryout):
    res = tryout(SERVE.replace('"-f", ', ""), PAGE, port=8000)  # busybox httpd without -f daemonizes
    assert res.verdict == "exits at once" and res.exit_code == 0
    assert "foreground" in res.hint


def test_a_script_that_fails_has_crashed(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"echo halfway; exit 4\"]\n")
    assert res.verdict == "crashed" and res.exit_code == 4 and "halfway" in res.log_tail


def test_a_missing_program_or_user_fails_to_start_with_a_hint(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"pyhton\", \"app.py\"]\n")
    assert res.verdict == "crashed" and "pyhton" in res.message, res.explain()
    res = tryout(SERVE.replace("CMD", "USER appuser\nCMD"), PAGE, port=8000)
    assert res.verdict == "exits at once" and "appuser" in res.message and "adduser" in res.hint


def test_a_script_still_running_after_run_seconds_hangs(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"sleep\", \"600\"]\n", run_seconds=1)
    assert res.verdict == "hangs" and "1 s" in res.message


def test_a_server_on_another_port_never_answers_and_we_say_where_it_listens(tryout):
    res = tryout(SERVE.replace('"8000"', '"9000"'), PAGE, port=8000, start_timeout=2)
    assert res.verdict == "never answers", res.explain()
    assert "0.0.0.0:9000" in res.listening or ":::9000" in " ".join(res.listening) or "::9000" in res.listening
    assert "9000" in res.message and "8000" in res.message


def test_a_server_bound_to_loopback_inside_the_container_is_told_to_use_0000(tryout):
    res = tryout(SERVE.replace('"8000"', '"127.0.0.1:8000"'), PAGE, port=8000, start_timeout=2)
    assert res.verdict == "never answers" and "127.0.0.1:8000" in res.message and "0.0.0.0" in res.hint


def test_out_of_memory_is_named(tryout):
    res = tryout(f"FROM {BUSYBOX}\nCMD [\"dd\", \"if=/dev/zero\", \"of=/dev/null\", \"bs=64M\", \"count=1\"]\n",
                 port=8000, limits=Limits(memory="16m"))  # dd's 64 MiB buffer cannot fit in 16 MiB
    assert res.verdict == "exits at once" and res.exit_code == 137, res.explain()
    assert "out of memory" in res.message and "16m" in res.message  # (the engine's OOMKilled flag is racy)


def test_a_server_answering_404_is_an_http_error(tryout):
    res = tryout(SERVE, PAGE, port=8000, path="/missing.html")
    assert res.verdict == "http error" and res.http_status == 404 and "/missing.html" in res.message


# --------------------------------------------------------------------------- health checks


def test_a_passing_healthcheck_is_healthy_even_with_a_30_s_interval(tryout):
    res = tryout(SERVE.replace("CMD", f"HEALTHCHECK --interval=30s CMD {WGET} || exit 1\nCMD"), PAGE, port=8000,
                 wait_healthy=True)
    assert res.ok and res.health == "healthy", res.explain()
    assert res.healthcheck["Interval"] == 30 * 10**9  # the image keeps the student's pace


def test_a_failing_healthcheck_is_unhealthy_with_its_last_results(tryout):
    res = tryout(SERVE.replace("CMD", f"HEALTHCHECK --retries=2 CMD {WGET}nothing-here || exit 1\nCMD"), PAGE,
                 port=8000, wait_healthy=True)
    assert res.verdict == "unhealthy" and res.health == "unhealthy", res.explain()
    assert res.health_log and res.health_log[-1][0] == 1 and "exit 1" in res.message


def test_waiting_for_health_without_a_healthcheck_says_there_is_none(tryout):
    res = tryout(SERVE, PAGE, port=8000, wait_healthy=True)
    assert res.verdict == "no healthcheck" and "HEALTHCHECK" in res.hint


# --------------------------------------------------------------------------- the caller's mistakes, concurrency


def test_a_fixed_host_port_that_is_taken_is_an_error_naming_it(tryout):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(DockerfileError, match=f"port {taken} is already in use"):
            tryout(SERVE, PAGE, port=8000, host_port=taken)


def test_doctests():
    from coursekit.dockerfile import limits as sandboxlimits

    for module in (da, sandboxlimits):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_bad_limits_and_arguments_say_what_to_write():
    with pytest.raises(LimitsError, match="not a size"):
        Limits(memory="lots")
    with pytest.raises(LimitsError, match="network"):
        Limits(network="host")
    with pytest.raises(DockerfileError, match="not a TCP port"):
        da.try_dockerfile(SERVE, PAGE, port="8000")
    with pytest.raises(DockerfileError, match="network='none'"):
        da.try_dockerfile(SERVE, PAGE, port=8000, limits=Limits(network="none"))


def test_two_tryouts_at_once_do_not_interfere(tryout):
    results = {}

    def go(word):
        results[word] = tryout(SERVE, {"index.html": f"{word}\n"}, port=8000)

    threads = [threading.Thread(target=go, args=(w,)) for w in ("alpha", "beta")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {w: (r.verdict, r.http_body) for w, r in results.items()} == \
        {"alpha": ("ok", b"alpha\n"), "beta": ("ok", b"beta\n")}
