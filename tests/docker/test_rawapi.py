"""coursekit.docker.rawapi against the real Docker engine: the raw API says what the SDK says,
errors name the socket and a fix, and a container made by hand leaves nothing behind."""
from __future__ import annotations

import doctest
import socket
import time

import pytest

from coursekit.docker import engine, rawapi as engineapi
from coursekit.errors import DockerError, EngineUnavailable

TINY = "coursekit/busybox:v1"


pytestmark = pytest.mark.usefixtures("real_engine")


@pytest.fixture
def no_docker_host(monkeypatch):
    monkeypatch.delenv("COURSEKIT_NO_ENGINE", raising=False)
    return monkeypatch


def test_doctests():
    res = doctest.testmod(engineapi)
    assert res.failed == 0 and res.attempted > 0


def test_raw_version_equals_the_sdks():
    status, headers, data = engineapi.get("/version")
    sdk = engine.client().version()
    assert status == 200
    assert data["ApiVersion"] == sdk["ApiVersion"]
    assert data["Version"] == sdk["Version"]
    assert headers["Api-Version"] == sdk["ApiVersion"]


def test_ping_is_text_and_versioned_paths_work():
    r = engineapi.get("/_ping")
    assert (r.status, r.data) == (200, "OK")
    api = r.headers["Api-Version"]
    assert engineapi.get(engineapi.versioned("/version", api)).data["ApiVersion"] == api
    too_new = engineapi.get("/v9.99/version")
    assert too_new.status == 400 and "too new" in too_new.data["message"]


def test_missing_socket_names_the_path_and_a_fix(no_docker_host, tmp_path):
    path = tmp_path / "no-engine.sock"
    no_docker_host.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(EngineUnavailable) as info:
        engineapi.get("/version")
    assert str(path) in info.value.problem
    assert info.value.fix


def test_refused_socket_says_not_running(no_docker_host, tmp_path):
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound but never listening: connect() is refused
    try:
        no_docker_host.setenv("DOCKER_HOST", f"unix://{path}")
        with pytest.raises(EngineUnavailable, match="not running") as info:
            engineapi.get("/_ping")
        assert str(path) in str(info.value) and info.value.fix
    finally:
        s.close()


def test_silent_socket_times_out(no_docker_host, tmp_path):
    path = tmp_path / "silent.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)  # accepts, never answers
    try:
        no_docker_host.setenv("DOCKER_HOST", f"unix://{path}")
        t0 = time.monotonic()
        with pytest.raises(EngineUnavailable, match="did not answer"):
            engineapi.get("/_ping", timeout=0.5)
        assert time.monotonic() - t0 < 5
    finally:
        s.close()


def test_tcp_docker_host_is_explained(no_docker_host):
    no_docker_host.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    with pytest.raises(DockerError, match="Unix socket"):
        engineapi.get("/version")


def test_no_engine_mode_is_honoured(monkeypatch):
    monkeypatch.setenv("COURSEKIT_NO_ENGINE", "1")
    with pytest.raises(EngineUnavailable, match="no-engine mode"):
        engineapi.get("/version")


def test_create_start_inspect_logs_delete_leaves_nothing():
    labels = engine.labels("test-engineapi")
    r = engineapi.request("POST", "/containers/create",
                          {"Image": TINY, "Cmd": ["sh", "-c", "echo out; echo err >&2"], "Labels": labels})
    assert r.status == 201, r
    cid = r.data["Id"]
    try:
        assert engineapi.request("POST", f"/containers/{cid}/start").status == 204
        waited = engineapi.request("POST", f"/containers/{cid}/wait", timeout=30)
        assert waited.data["StatusCode"] == 0
        info = engineapi.get(f"/containers/{cid}/json").data
        assert info["Id"] == cid and info["Config"]["Labels"][engine.SESSION] == engine.SESSION_ID
        assert engine.client().containers.get(cid).labels == info["Config"]["Labels"]  # the SDK sees the same
        logs = engineapi.get(f"/containers/{cid}/logs", params={"stdout": 1, "stderr": 1})
        assert engineapi.demux_logs(logs.data) == {"stdout": "out\n", "stderr": "err\n"}
    finally:
        gone = engineapi.request("DELETE", f"/containers/{cid}", params={"force": 1})
    assert gone.status == 204
    assert engineapi.get(f"/containers/{cid}/json").status == 404
    left = engineapi.get("/containers/json", params={"all": 1, "filters": {"id": [cid]}}).data
    assert left == []


def test_query_filters_match_the_sdk():
    with engine.container(TINY, ["sleep", "30"], lesson="test-engineapi") as c:
        flt = {"label": [f"{engine.SESSION}={engine.SESSION_ID}"]}
        raw = engineapi.get("/containers/json", params={"filters": flt}).data
        assert [x["Id"] for x in raw] == [x.id for x in engine.client().containers.list(filters=flt)]
        assert c.id in [x["Id"] for x in raw]
        assert raw[0]["Names"] == [f"/{c.name}"]


def test_demux_logs_splits_frames():
    frame = b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n" + b"\x02\x00\x00\x00\x00\x00\x00\x04oops"
    assert engineapi.demux_logs(frame) == {"stdout": "hi\n", "stderr": "oops"}
