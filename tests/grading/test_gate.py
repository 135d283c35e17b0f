"""The gate between a submission and the engine: what an honest student needs works, every attack is refused.

Two submissions (two gates) run side by side, as in a class graded in parallel; each talks to its
gate with the plain docker SDK, as a student's code would. Each attempt is one test: it must be
refused (or find nothing) and leave the engine as it was.
"""
from __future__ import annotations

import io
import json
import socket
import tarfile
import time
import urllib.request

import docker
import pytest
from fixtures.grading.gateclient import refused, sdk

from coursekit.docker import engine
from coursekit.grading.gate import Caps, Gate
from coursekit.grading.gate.server import MAX_CONNECTIONS
from coursekit.grading.gate.tenant import TENANT
from coursekit.grading.worker.ports import Ports

pytestmark = pytest.mark.engine
BUSYBOX = "coursekit/busybox:v1"


@pytest.fixture(scope="module")
def gates(tmp_path_factory, real_engine):
    a = Gate(tmp_path_factory.mktemp("gate-a"), caps=Caps(containers=6)).start()
    b = Gate(tmp_path_factory.mktemp("gate-b")).start()
    yield a, b
    a.stop()
    b.stop()
    cl = engine.client()
    assert not cl.containers.list(all=True, filters={"label": TENANT}), "a gate left a container"
    assert not cl.networks.list(filters={"label": TENANT}) and not cl.volumes.list(filters={"label": TENANT})
    registries = {f"127.0.0.1:{h}/" for g in (a, b) for h in g.tenant.registries.values()}
    left = [n for im in cl.api.images() for n in (im.get("RepoTags") or []) + (im.get("RepoDigests") or [])
            if n.startswith(tuple(registries))] if registries else []
    assert not left, f"names from a submission's registry are left: {left}"


@pytest.fixture(scope="module")
def a(gates):
    return sdk(gates[0])


@pytest.fixture(scope="module")
def b(gates):
    return sdk(gates[1])


@pytest.fixture(scope="module")
def bs_container(b):
    c = b.containers.run(BUSYBOX, ["sleep", "300"], detach=True, name="web")
    yield c
    c.remove(force=True)


# --------------------------------------------------------------------------- what honest code needs


def test_two_students_both_name_a_container_web_and_each_sees_only_its_own(a, b, bs_container):
    mine = a.containers.run(BUSYBOX, ["sleep", "300"], detach=True, name="web")
    try:
        assert [c.name for c in a.containers.list()] == ["web"]
        assert mine.id != bs_container.id and a.containers.get("web").id == mine.id
        assert {c.id for c in a.containers.list(all=True)} == {mine.id}
    finally:
        mine.remove(force=True)


def test_a_container_runs_with_the_sandbox_limits_whatever_it_asks(a):
    c = a.containers.run(BUSYBOX, ["sleep", "30"], detach=True, mem_limit="8g", pids_limit=100000)
    try:
        hc = engine.client().api.inspect_container(c.id)["HostConfig"]  # as the engine really has it
        assert hc["Memory"] == hc["MemorySwap"] == 512 << 20 and hc["PidsLimit"] == 256
        assert hc["CapDrop"] == ["ALL"] and "SYS_ADMIN" not in hc["CapAdd"] and hc["Privileged"] is False
        assert hc["SecurityOpt"] == ["no-new-privileges"] and hc["NetworkMode"].startswith("ck")
        assert c.exec_run(["cat", "/proc/1/comm"]).output == b"sleep\n"
        assert c.attrs["HostConfig"]["NetworkMode"] == "default"  # as the student sees it
    finally:
        c.remove(force=True)


def test_a_published_port_answers_on_the_sandboxs_own_loopback(gates, a):
    ports = Ports(str(gates[0].socket)).start()
    try:
        c = a.containers.run(BUSYBOX, ["sh", "-c", "mkdir /w && echo hello > /w/index.html && httpd -f -p 8000 -h /w"],
                             detach=True, ports={"8000/tcp": ("127.0.0.1", None)})
        c.reload()
        host = int(c.ports["8000/tcp"][0]["HostPort"])
        assert c.ports["8000/tcp"][0]["HostIp"] == "127.0.0.1"
        deadline = time.monotonic() + 10
        while True:
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{host}/", timeout=2).read() == b"hello\n"
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        c.remove(force=True)
    finally:
        ports.stop()


def test_a_build_uses_the_course_image_and_stays_in_the_students_namespace(a, b):
    image, _ = a.images.build(fileobj=io.BytesIO(b"FROM coursekit/busybox:v1\nRUN echo hi > /hi\n"), tag="mine:1")
    try:
        assert image.tags == ["mine:1"]
        assert "mine:1" in {t for i in a.images.list() for t in i.tags}
        assert "mine:1" not in {t for i in b.images.list() for t in i.tags}, "another student's image is invisible"
        refused(lambda: b.images.get("mine:1"), 404)
        assert a.containers.run("mine:1", ["cat", "/hi"], remove=True) == b"hi\n"
    finally:
        a.images.remove("mine:1", force=True)


def test_a_named_volume_keeps_its_data_and_is_the_students_alone(a, b):
    vol = a.volumes.create("data")
    try:
        a.containers.run(BUSYBOX, ["sh", "-c", "echo kept > /d/f"], volumes={"data": {"bind": "/d"}}, remove=True)
        assert a.containers.run(BUSYBOX, ["cat", "/d/f"], volumes={"data": {"bind": "/d"}}, remove=True) == b"kept\n"
        assert [v.name for v in a.volumes.list()] == ["data"] and b.volumes.list() == []
        # the other student's "data" is a volume of its own, made on first use (as docker run -v does): empty
        out = b.containers.run(BUSYBOX, ["sh", "-c", "cat /d/f || echo empty"], volumes={"data": {"bind": "/d"}},
                               remove=True)
        assert out.strip().endswith(b"empty") and [v.name for v in b.volumes.list()] == ["data"]
        b.volumes.get("data").remove()
    finally:
        vol.remove(force=True)


def test_a_removed_container_takes_its_anonymous_volumes_along(a):
    """An image's VOLUME gives each container an anonymous volume, which carries no label: removed with it."""
    image, _ = a.images.build(fileobj=io.BytesIO(b"FROM coursekit/busybox:v1\nVOLUME /data\n"), tag="vol:1")
    before = {v.name for v in engine.client().volumes.list()}
    try:
        c = a.containers.run("vol:1", ["sh", "-c", "echo x > /data/f"], detach=True)
        c.wait()
        made = {m["Name"] for m in engine.client().api.inspect_container(c.id)["Mounts"] if m.get("Type") == "volume"}
        assert made and not made & before
        c.remove()  # as the student wrote it: no v=True
        assert not made & {v.name for v in engine.client().volumes.list()}
    finally:
        a.images.remove("vol:1", force=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return json.loads(resp.read())
        except OSError:
            assert time.monotonic() < deadline, f"{url} does not answer"
            time.sleep(0.2)


@pytest.fixture
def a_registry(gates, a):
    """Student a runs the course's registry image, publishing it on its own 127.0.0.1:PORT (plain SDK)."""
    ports = Ports(str(gates[0].socket)).start()
    port = _free_port()
    c = a.containers.run("coursekit/registry:2", detach=True, ports={"5000/tcp": ("127.0.0.1", port)},
                         environment={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    _get(f"http://127.0.0.1:{port}/v2/")
    yield f"127.0.0.1:{port}", gates[0].tenant.registries[port]
    c.remove(force=True, v=True)
    ports.stop()


def test_a_student_pushes_to_its_own_registry_and_pulls_back_by_digest(gates, a, b, a_registry):
    host, real = a_registry
    image, _ = a.images.build(fileobj=io.BytesIO(b"FROM coursekit/busybox:v1\nRUN echo v1 > /release\n"),
                              tag="rel:1")
    try:
        assert image.tag(f"{host}/shop/web", "1")
        lines = list(a.images.push(f"{host}/shop/web", tag="1", stream=True, decode=True))
        assert not [x for x in lines if "error" in x], lines
        text = json.dumps(lines)
        assert f"[{host}/shop/web]" in text and str(real) not in text, "the push is told as the student named it"
        digest = next(x["aux"]["Digest"] for x in lines if "aux" in x)
        assert _get(f"http://{host}/v2/_catalog") == {"repositories": ["shop/web"]}  # the registry's own API
        assert f"{host}/shop/web:1" in a.images.get(image.id).tags
        a.images.remove(f"{host}/shop/web:1")
        pulled = a.images.pull(f"{host}/shop/web@{digest}")
        assert pulled.id == image.id and f"{host}/shop/web@{digest}" in pulled.attrs["RepoDigests"]
        # the engine really pushed to the gate's port on the grading host's loopback, never a public address
        assert f"127.0.0.1:{real}/shop/web@{digest}" in engine.client().images.get(image.id).attrs["RepoDigests"]
        assert {s.getsockname()[0] for s in gates[0]._listeners} == {"127.0.0.1"}
        # the other student sees none of it, and cannot push there or pull from there, by either address
        assert not [n for i in b.images.list() for n in i.tags + i.attrs.get("RepoDigests", []) if "shop/web" in n]
        for ref in (f"{host}/shop/web", f"127.0.0.1:{real}/shop/web"):
            assert "registry" in refused(lambda r=ref: b.api.pull(r, tag="1"))
            assert "registry" in refused(lambda r=ref: b.api.tag(BUSYBOX, r, "1"))
        a.images.remove(f"{host}/shop/web@{digest}")
    finally:
        a.images.remove("rel:1", force=True)


@pytest.mark.parametrize("ref", ["alpine", "docker.io/library/busybox", "127.0.0.1:1/x", "localhost:2/x",
                                 "ghcr.io/acme/tools"])
def test_nothing_is_pushed_or_pulled_beyond_the_students_own_registry(a, a_registry, ref):
    refused(lambda: a.api.pull(ref, tag="1"))
    refused(lambda: list(a.api.push(ref, tag="1", stream=True, decode=True)))


def test_a_course_image_pushed_to_the_registry_keeps_the_course_tag_and_loses_the_students(a, a_registry):
    host, real = a_registry
    a.api.tag(BUSYBOX, f"{host}/base/busybox", "1.4")
    lines = list(a.images.push(f"{host}/base/busybox", tag="1.4", stream=True, decode=True))
    assert not [x for x in lines if "error" in x], lines
    a.images.remove(f"{host}/base/busybox:1.4")  # a name goes, the course's image stays
    assert BUSYBOX in engine.client().images.get(BUSYBOX).tags
    assert f"127.0.0.1:{real}/base/busybox:1.4" not in engine.client().images.get(BUSYBOX).tags


# --------------------------------------------------------------------------- attacks on the host


@pytest.mark.parametrize("kwargs", [
    {"privileged": True},
    {"cap_add": ["SYS_ADMIN"]},
    {"cap_add": ["NET_RAW"]},
    {"volumes": {"/": {"bind": "/host"}}},
    {"volumes": {"/var/run/docker.sock": {"bind": "/var/run/docker.sock"}}},
    {"mounts": [docker.types.Mount("/host", "/etc", type="bind")]},
    {"network_mode": "host"},
    {"pid_mode": "host"},
    {"ipc_mode": "host"},
    {"userns_mode": "host"},
    {"uts_mode": "host"},
    {"devices": ["/dev/sda:/dev/sda:rwm"]},
    {"security_opt": ["seccomp=unconfined"]},
    {"security_opt": ["apparmor=unconfined"]},
    {"sysctls": {"net.ipv4.ip_forward": "1"}},
    {"ports": {"8000/tcp": ("0.0.0.0", 8000)}},
    {"ports": {"80/tcp": 80}},
    {"cgroup_parent": "/"},
], ids=lambda k: next(iter(k)) + ("=" + str(next(iter(k.values())))[:30]))
def test_a_container_that_would_reach_the_host_is_refused(a, kwargs):
    text = refused(lambda: a.containers.run(BUSYBOX, "true", **kwargs))
    assert "refused by the grading sandbox" in text
    assert a.containers.list(all=True) == []


@pytest.mark.parametrize("body, status", [
    ('{"Image": "%s", "HostConfig": {}, "hostconfig": {"Binds": ["/:/host"]}}', 400),
    ('{"Image": "%s", "hostconfig": {"Privileged": true}}', 403),
    ('{"Image": "%s", "HostConfig": {"privileged": true}}', 403),
    ('{"Image": "%s", "HostConfig": {"Mounts": [{"Type": "volume", "Source": "d", "source": "/", "Target": "/h"}]}}',
     400),
    ('{"Image": "%s", "HostConfig": {"Mounts": [{"TYPE": "bind", "SOURCE": "/", "Target": "/h"}]}}', 403),
    ('{"Image": "%s", "HostConfig": {"Mounts": [{"Type": "bind", "\u017fource": "/", "Target": "/h"}]}}', 403),
    ('{"Image": "%s", "HostConfig": {"Binds": []}, "HostConfig": {"Binds": ["/:/host"]}}', 400),
], ids=["two-hostconfigs", "lowercase-hostconfig", "lowercase-privileged", "source-twice", "uppercase-bind",
        "long-s", "duplicate-key"])
def test_keys_in_another_case_mean_what_the_engine_reads(a, body, status):
    """Go's JSON decoder matches keys case-insensitively, the later one winning: the gate checks what the engine
    would read, and refuses a body that says one thing twice."""
    raw = (body % BUSYBOX).encode()
    resp = a.api._post(a.api._url("/containers/create"), data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert "refused by the grading sandbox" in resp.json()["message"]
    assert a.containers.list(all=True) == []


def test_a_volume_that_binds_a_host_folder_is_refused(a):
    refused(lambda: a.volumes.create("hostroot", driver_opts={"type": "none", "o": "bind", "device": "/"}))


def test_nothing_is_pulled(a):
    refused(lambda: a.images.pull("alpine", tag="latest"))


def test_only_the_course_images_and_the_students_own_can_be_run(a):
    grader_run = next((t for i in engine.client().images.list() for t in i.tags if t.startswith("coursekit/grader-run")),
                      None) or "coursekit/not-here:1"
    refused(lambda: a.api.create_container(grader_run, "true"), 404)  # not the course's image, nor the student's
    assert "nothing is pulled" in refused(lambda: a.containers.run(grader_run, "true"))  # (the SDK then tries a pull)


def test_a_build_that_reaches_for_the_network_fails(a):
    with pytest.raises(docker.errors.BuildError) as err:
        a.images.build(fileobj=io.BytesIO(b"FROM coursekit/busybox:v1\nRUN wget -q -T 3 -O- http://1.1.1.1/\n"),
                       tag="net:1")
    assert "returned a non-zero code" in str(err.value)


def _context(members: list[tuple[str, bytes | None, str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.mark.parametrize("members", [
    [("Dockerfile", b"FROM coursekit/busybox:v1\nCOPY x /x\n", ""), ("../x", b"escape", "")],
    [("Dockerfile", b"FROM coursekit/busybox:v1\nCOPY x /x\n", ""), ("x", None, "/etc/shadow")],
    [("Dockerfile", b"FROM coursekit/busybox:v1\nCOPY x /x\n", ""), ("x", None, "../../etc/passwd")],
], ids=["dotdot", "absolute-symlink", "dotdot-symlink"])
def test_a_build_context_that_escapes_is_refused(a, members):
    refused(lambda: list(a.api.build(fileobj=_context(members), custom_context=True, tag="esc:1", decode=True)))


@pytest.mark.parametrize("dockerfile", [
    b"FROM alpine:3.19\nRUN true\n",
    b"ARG BASE=alpine\nFROM $BASE\n",
    b"FROM coursekit/busybox:v1\nADD https://example.com/x /x\n",
])
def test_a_build_that_would_pull_or_download_is_refused(a, dockerfile):
    refused(lambda: a.images.build(fileobj=io.BytesIO(dockerfile), tag="x:1"))


def test_the_course_images_cannot_be_removed(a):
    refused(lambda: a.images.remove(BUSYBOX, force=True))


def test_limits_cannot_be_raised_afterwards(a):
    c = a.containers.create(BUSYBOX, "true")
    try:
        refused(lambda: c.update(mem_limit="8g"))
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("call", ["init", "leave", "service"])
def test_swarm_is_not_served(a, call):
    do = {"init": lambda: a.swarm.init(advertise_addr="127.0.0.1"), "leave": lambda: a.swarm.leave(force=True),
          "service": lambda: a.services.create(BUSYBOX, ["true"],
                                               mounts=[docker.types.Mount("/host", "/", type="bind")])}[call]
    refused(do)


def test_counts_are_capped(gates, a):
    made = []
    try:
        with pytest.raises(docker.errors.APIError) as err:
            for _ in range(gates[0].caps.containers + 1):
                made.append(a.containers.create(BUSYBOX, "true"))
        assert err.value.status_code == 429 and len(made) == gates[0].caps.containers
    finally:
        for c in made:
            c.remove(force=True)


def test_logs_are_capped_by_the_engine(a):
    c = a.containers.run(BUSYBOX, ["sh", "-c", "head -c 8000000 /dev/zero | tr '\\0' x | fold -w 100"], detach=True)
    try:
        c.wait(timeout=60)
        assert len(c.logs()) < 2_000_000  # the engine keeps 1 MB: a flood costs the student, not the host
    finally:
        c.remove(force=True)


# --------------------------------------------------------------------------- attacks on another student


def test_another_students_container_is_invisible(gates, a, bs_container):
    for ref in (bs_container.id, bs_container.id[:12], f"{gates[1].tenant.prefix}web"):
        refused(lambda: a.containers.get(ref), 404)
        refused(lambda: a.api.exec_create(ref, ["id"]), 404)
        refused(lambda: a.api.kill(ref), 404)
        refused(lambda: a.api.attach_socket(ref, params={"stdin": 1, "stream": 1}), 404)
    refused(lambda: a.containers.run(BUSYBOX, "true", network_mode=f"container:{bs_container.id}"))
    assert bs_container.id not in {c.id for c in a.containers.list(all=True)}
    bs_container.reload()
    assert bs_container.status == "running"


def test_the_graders_own_containers_are_invisible(a):
    other = engine.run(BUSYBOX, ["sleep", "60"], detach=True, lesson="test-gate")
    try:
        refused(lambda: a.containers.get(other.id), 404)
        refused(lambda: a.api.remove_container(other.id, force=True), 404)
        assert other.id not in {c.id for c in a.containers.list(all=True)}
    finally:
        other.remove(force=True)


# --------------------------------------------------------------------------- attacks on the gate itself


def raw(gate, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(gate.socket))
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


@pytest.mark.parametrize("path,status", [
    ("/v1.41/containers/../../info", b"400"),
    ("/v1.41/containers/%252e%252e/json", b"400"),
    ("/v1.41/containers//json", b"400"),
    ("/v1.41/plugins", b"403"),
    ("/v1.41/system/df", b"403"),
    ("/v1.41/no/such/endpoint", b"404"),
])
def test_odd_paths_are_refused(gates, path, status):
    head = raw(gates[0], f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert head.split(b" ", 2)[1] == status, head


def test_a_request_framed_two_ways_is_refused(gates):
    """Content-Length and chunked at once: the classic request smuggling. The gate re-frames every request it
    forwards (the engine never sees the sandbox's framing), and refuses this one outright."""
    head = raw(gates[0], b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1.41/info HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head


def test_too_many_connections_do_not_stop_the_gate(gates, a):
    held = []
    try:
        for _ in range(MAX_CONNECTIONS + 30):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(gates[0].socket))
            held.append(s)
        time.sleep(0.2)
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert a.ping()
            break
        except Exception:  # noqa: BLE001 - the held connections are still being dropped
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_every_refusal_is_noted_for_the_feedback(gates):
    assert any("privileged" in r for r in gates[0].refusals)
    assert all(json.dumps(r) for r in gates[0].refusals)


# --------------------------------------------------------------------------- in a class, as graded


ATTACKS = '''
import docker
cl = docker.from_env()
tries = {}
for name, kw in {"privileged": dict(privileged=True), "host root": dict(volumes={"/": {"bind": "/h"}}),
                 "host network": dict(network_mode="host"), "sys_admin": dict(cap_add=["SYS_ADMIN"])}.items():
    try:
        cl.containers.run("coursekit/busybox:v1", "true", remove=True, **kw)
        tries[name] = "ran"
    except docker.errors.APIError as exc:
        tries[name] = exc.status_code
tries["others"] = [c.name for c in cl.containers.list(all=True)]
tries["socket"] = __import__("os").path.exists("/var/run/docker.sock")
print(tries)
assert all(v == 403 for k, v in tries.items() if k not in ("others", "socket")), tries
assert tries["others"] == [] and tries["socket"] is False, tries
'''


@pytest.mark.slow
def test_a_class_with_an_attacker_beside_honest_students(tmp_path, gates):
    from coursekit.grading import classroom as grading_class
    from fixtures.grading import classroom

    name = "01-containers-and-vms"
    subs = tmp_path / "subs"
    every = list(classroom.points(name))
    classroom.write(classroom.student(name, solved=every), subs / "ada.ipynb")
    classroom.write(classroom.student(name, solved=every, append=[ATTACKS]), subs / "mallory.ipynb")
    classroom.write(classroom.student(name, solved=every), subs / "bo.ipynb")
    result = grading_class.grade(subs, classroom.solution(name), tmp_path / "out", workers=3, progress=None)
    full = sum(classroom.points(name).values())
    assert {s: r.score for s, r in result.results.items()} == {"ada": full, "mallory": full, "bo": full}
    mallory = result.results["mallory"]
    assert [c for c in mallory.cells if c.get("status") == "error"] == [], mallory.cells  # every attack refused
    assert any("refused a Docker request" in e and "privileged" in e for e in mallory.events), mallory.events
    assert not any("refused" in e for e in result.results["ada"].events)
    ours = {g.tenant.id for g in gates}  # (the two gates of this module are still open)
    left = [c for c in engine.client().api.containers(all=True, filters={"label": TENANT})
            if c["Labels"][TENANT] not in ours]
    assert not left, left


def test_what_a_submission_made_goes_even_when_the_grader_is_killed(tmp_path, real_engine):
    """The grader's reaper removes the objects of its gates: they carry its labels (images: its gate session)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import io, os, signal, docker
        from coursekit.grading.gate import Gate
        gate = Gate({str(tmp_path / 'g')!r}).start()
        cl = docker.DockerClient(base_url="unix://" + str(gate.socket), version="1.41")
        cl.containers.run({BUSYBOX!r}, ["sleep", "300"], detach=True, name="web")
        cl.volumes.create("data")
        cl.images.build(fileobj=io.BytesIO(b"FROM {BUSYBOX}\\nRUN echo x > /x\\n"), tag="mine:1")
        print(gate.tenant.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    tenant = out.stdout.strip()
    assert tenant and out.returncode == -9, out.stderr[-2000:]
    cl = engine.client()
    flt = {"label": f"{TENANT}={tenant}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (cl.containers.list(all=True, filters=flt) or cl.images.list(filters=flt)
                                           or cl.volumes.list(filters=flt) or cl.networks.list(filters=flt)):
        time.sleep(0.5)
    assert not cl.containers.list(all=True, filters=flt) and not cl.images.list(filters=flt)
    assert not cl.volumes.list(filters=flt) and not cl.networks.list(filters=flt)
