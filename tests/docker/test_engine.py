"""The engine module against the real Docker engine: labels, clean-up, clear errors."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from coursekit.docker import engine
from coursekit.errors import DockerError

TINY = "coursekit/busybox:v1"
PY = sys.executable


pytestmark = pytest.mark.usefixtures("real_engine")


def _exists(cid: str) -> bool:
    import docker.errors

    try:
        engine.client().containers.get(cid)
        return True
    except docker.errors.NotFound:
        return False


def _run_python(code: str, env: dict | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("COURSEKIT_NO_ENGINE", None)
    e.update(env or {})
    return subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e, timeout=timeout)


def test_run_returns_output_and_labels_everything():
    assert engine.run(TINY, "echo hi") == b"hi\n"
    with engine.container(TINY, "sleep 30", lesson="test") as c:
        c.reload()
        assert c.labels[engine.OWNER] == "coursekit"
        assert c.labels[engine.SESSION] == engine.SESSION_ID
        assert c.labels[engine.LESSON] == "test"
        assert c.labels[engine.PID] == str(os.getpid())


def test_container_is_removed_when_the_block_fails():
    with pytest.raises(RuntimeError):
        with engine.container(TINY, "sleep 30") as c:
            cid = c.id
            raise RuntimeError("a cell failed half-way")
    assert not _exists(cid)


def test_named_container_from_an_earlier_run_is_replaced():
    first = engine.run(TINY, "sleep 30", name="ck-test-rerun", detach=True)
    second = engine.run(TINY, "sleep 30", name="ck-test-rerun", detach=True)
    try:
        assert first.id != second.id
        assert not _exists(first.id)
    finally:
        second.remove(force=True)


def test_a_foreign_container_with_that_name_is_left_alone():
    foreign = engine.client().containers.run(TINY, "sleep 30", name="ck-test-foreign", detach=True,
                                             labels={"purpose": "not coursekit's"})
    try:
        with pytest.raises(DockerError) as err:
            engine.run(TINY, "true", name="ck-test-foreign")
        assert "did not create it" in err.value.problem and "docker rm -f ck-test-foreign" in err.value.fix
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def test_non_zero_exit_quotes_exit_code_and_last_output():
    with pytest.raises(DockerError) as err:
        engine.run(TINY, ["sh", "-c", "echo preparing; echo the real reason >&2; exit 3"])
    assert "code 3" in err.value.problem
    assert "the real reason" in err.value.problem


def test_missing_image_is_explained():
    with pytest.raises(DockerError) as err:
        engine.run("coursekit/no-such-image:v0", "true")
    assert "coursekit/no-such-image:v0" in err.value.problem
    assert "coursekit images" in err.value.fix


def test_networks_and_volumes_are_labelled_and_reused():
    net = engine.network("ck-test-net")
    vol = engine.volume("ck-test-vol")
    try:
        assert engine.network("ck-test-net").id == net.id  # re-running a notebook reuses ours
        assert engine.volume("ck-test-vol").name == vol.name
        assert net.attrs["Labels"][engine.OWNER] == "coursekit"
        assert vol.attrs["Labels"][engine.SESSION] == engine.SESSION_ID
    finally:
        net.remove()
        vol.remove(force=True)


def test_atexit_removes_what_a_process_started():
    out = _run_python(f"""
        from coursekit import engine
        c = engine.run({TINY!r}, "sleep 60", detach=True)
        (engine.scratch_dir() / "f").write_text("x")
        print(c.id, engine.scratch_dir())
    """)
    assert out.returncode == 0, out.stderr
    cid, scratch = out.stdout.split()
    assert not _exists(cid)
    assert not os.path.exists(scratch)


def test_reaper_removes_what_a_killed_process_started():
    """A restarted kernel dies without running atexit: the reaper cleans up after it."""
    out = _run_python(f"""
        import os, signal
        from coursekit import engine
        c = engine.run({TINY!r}, "sleep 60", detach=True)
        (engine.scratch_dir() / "saved-image.tar").write_bytes(b"x" * 1000)
        print(c.id, engine.scratch_dir(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    cid, scratch = out.stdout.split()
    assert cid and out.returncode == -9
    deadline = time.monotonic() + 20
    while (_exists(cid) or os.path.exists(scratch)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _exists(cid), "the reaper did not remove the killed process's container"
    assert not os.path.exists(scratch), "the reaper did not remove the killed process's temporary files"


def test_reap_dead_sessions_removes_leftovers_of_dead_processes():
    """Even without a reaper (say it was killed too), the next lesson start tidies up."""
    c = engine.client().containers.run(TINY, "sleep 60", detach=True, labels={
        **engine.labels(), engine.SESSION: "dead-session", engine.PID: "999999999"})
    try:
        dead_scratch = engine.scratch_path(f"{socket.gethostname()}-999999999-abcdef12")
        dead_scratch.mkdir()
        rep = engine.reap_dead_sessions()
        assert c.name in rep.containers
        assert not dead_scratch.exists(), "a dead session's temporary folder was left behind"
        assert engine.scratch_dir().exists(), "our own (live) session's folder must stay"
        assert not _exists(c.id)
    finally:
        if _exists(c.id):
            c.remove(force=True)


# ---------------------------------------------------------------- engine absent, down, old

def test_no_engine_at_all():
    out = _run_python("""
        from coursekit import engine
        st = engine.status()
        print(st.ok); print(st.reason); print(st.fix)
        try:
            engine.client()
        except Exception as e:
            print(type(e).__name__)
    """, env={"DOCKER_HOST": "unix:///tmp/ck-no-such-socket"})
    ok, reason, fix, exc = out.stdout.strip().splitlines()
    assert ok == "False" and "nothing at /tmp/ck-no-such-socket" in reason
    assert "install" in fix.lower() and exc == "EngineUnavailable"


def test_engine_down(tmp_path):
    path = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # the socket file exists, but nobody accepts: like a stopped daemon
    try:
        out = _run_python("""
            from coursekit import engine
            print(engine.status().reason)
        """, env={"DOCKER_HOST": f"unix://{path}"})
    finally:
        s.close()
    assert "not running" in out.stdout, out.stdout + out.stderr


def test_engine_too_old():
    out = _run_python("""
        from coursekit import engine
        st = engine.status()
        print(st.ok, '|', st.reason, '|', st.fix)
    """, env={"COURSEKIT_MIN_API_VERSION": "9.99"})
    ok, reason, fix = (p.strip() for p in out.stdout.split("|"))
    assert ok == "False" and "too old" in reason and "9.99" in reason and "upgrade" in fix.lower()


def test_no_engine_mode_is_explained_not_crashed():
    out = _run_python("""
        import coursekit as ck
        print(ck.mode())
        print(ck.needs_engine("docker run --rm coursekit/busybox:v1 hostname", shows="a hostname"))
    """, env={"COURSEKIT_NO_ENGINE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no engine")
    assert "it would run: docker run --rm coursekit/busybox:v1 hostname" in out.stdout
    assert out.stdout.strip().endswith("False")


def test_coursekit_errors_print_as_two_lines_in_a_notebook():
    """In IPython, a CoursekitError shows what happened and what to do, not our stack frames."""
    out = _run_python("""
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        from coursekit.errors import install_notebook_handler
        assert install_notebook_handler()
        ip.run_cell("from coursekit import engine\\nengine.client()")
    """, env={"COURSEKIT_NO_ENGINE": "1"})
    text = out.stdout + out.stderr
    assert "coursekit: this session runs in no-engine mode" in text
    assert "What to do:" in text
    assert "Traceback" not in text and "engine.py" not in text


def test_a_container_someone_else_made_from_a_course_image_is_not_ours():
    """Course images carry the owner label and containers inherit it: clean must still spare them."""
    foreign = engine.client().containers.run(TINY, "sleep 30", detach=True)
    try:
        assert foreign.labels.get(engine.OWNER) == engine.OWNER_VALUE  # inherited from the image
        assert not engine.is_ours(foreign.labels)
        engine.clean()
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)
