"""Published ports stay on 127.0.0.1; waiting for a container or a server says what went wrong."""
from __future__ import annotations

import socket

import pytest

from coursekit.docker import engine
from coursekit.errors import DockerError

pytestmark = pytest.mark.usefixtures("real_engine")
BUSYBOX = "coursekit/busybox:v1"
SERVE = ["sh", "-c", "mkdir -p /www && echo hello from the container > /www/index.html && httpd -f -p 8000 -h /www"]


def _host_ips(c) -> set[str]:
    c.reload()
    return {b["HostIp"] for bs in c.attrs["NetworkSettings"]["Ports"].values() if bs for b in bs}


def test_a_published_port_answers_on_loopback_only():
    with engine.container(BUSYBOX, SERVE, ports={"8000/tcp": None}) as c:
        port = engine.host_port(c, 8000)
        status, body = engine.wait_http(port, "/index.html", container=c, timeout=10)
        assert (status, body.strip()) == (200, b"hello from the container")
        assert _host_ips(c) == {"127.0.0.1"}


@pytest.mark.parametrize("ports", [{"8000/tcp": ("0.0.0.0", None)}, {"8000/tcp": {"HostIp": "0.0.0.0"}}])
def test_binding_beyond_loopback_is_refused(ports):
    with pytest.raises(DockerError, match="127.0.0.1 only"):
        engine.run(BUSYBOX, ["true"], ports=ports)


def test_a_fixed_port_that_is_taken_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(DockerError, match=f"port {taken} on this machine is already in use") as err:
            with engine.container(BUSYBOX, ["sleep", "30"], ports={"8000/tcp": taken}):
                pass
        assert "another host port" in err.value.fix
    assert not engine.client().containers.list(all=True, filters=engine.ours_filter(engine.SESSION_ID))


def test_a_container_that_exits_at_once_reports_code_and_output():
    with engine.container(BUSYBOX, ["sh", "-c", "echo cannot find config.yml >&2; exit 3"]) as c:
        with pytest.raises(engine.ContainerExited) as err:
            engine.wait_running(c, timeout=10)
    assert err.value.exit_code == 3
    assert "exited with code 3" in err.value.problem and "cannot find config.yml" in err.value.problem


def test_command_not_found_is_explained():
    with engine.container(BUSYBOX, ["sh", "-c", "no-such-program"]) as c:
        with pytest.raises(engine.ContainerExited, match="not found in the image"):
            engine.wait_running(c, timeout=10)


def test_waiting_for_http_notices_the_server_died():
    with engine.container(BUSYBOX, ["sh", "-c", "sleep 0.5; echo bye; exit 1"], ports={"8000/tcp": None}) as c:
        port = engine.host_port(c, "8000/tcp")
        with pytest.raises(engine.ContainerExited, match="before anything answered on port"):
            engine.wait_http(port, container=c, timeout=10)


def test_waiting_for_a_port_nobody_listens_on_names_port_and_time():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(DockerError, match=rf"nothing answered TCP on 127.0.0.1:{free} within 1 s"):
        engine.wait_tcp(free, timeout=1)


def test_running_container_is_returned():
    with engine.container(BUSYBOX, ["sleep", "30"]) as c:
        assert engine.wait_running(c, timeout=10) is c
        assert c.status == "running"
