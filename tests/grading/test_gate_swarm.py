"""Swarm services through the gate: a submission deploys, scales and reaches its own services; the swarm,
other students' services and everything that would reach the host stay out of reach.

Two submissions side by side on a swarm manager (made one here if the engine is not), each through
its gate with the plain docker SDK, as a student's code would.
"""
from __future__ import annotations

import json
import time

import docker
import pytest
from fixtures.grading.gateclient import refused, sdk
from docker.types import EndpointSpec, Healthcheck, Mount, ServiceMode

from coursekit.docker import engine
from coursekit.grading.gate import Gate
from coursekit.grading.gate.tenant import TENANT
from coursekit.orchestrate import swarm

pytestmark = pytest.mark.engine
BUSYBOX = "coursekit/busybox:v1"
SERVE = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8000 -h /www"]


@pytest.fixture(scope="module")
def gates(tmp_path_factory, real_engine):
    made = swarm.state() == "inactive"
    swarm.init(lesson="test-gate-swarm")
    a = Gate(tmp_path_factory.mktemp("gate-a")).start()
    b = Gate(tmp_path_factory.mktemp("gate-b")).start()
    yield a, b
    a.stop()
    b.stop()
    cl = engine.client()
    assert not cl.services.list(filters={"label": TENANT}), "a gate left a service"
    assert not cl.containers.list(all=True, filters={"label": TENANT}), "a gate left a task's container"
    assert not cl.networks.list(filters={"label": TENANT}), "a gate left a network"
    if made:
        swarm.leave(engine.SESSION_ID)


@pytest.fixture(scope="module")
def a(gates):
    return sdk(gates[0])


@pytest.fixture(scope="module")
def b(gates):
    return sdk(gates[1])


@pytest.fixture(scope="module")
def web(a):
    """Student a's service: two replicas of a web server on its own overlay network, with a health check."""
    net = a.networks.create("web-net", driver="overlay", attachable=True)
    health = Healthcheck(test=["CMD", "wget", "-qO-", "http://127.0.0.1:8000/"], interval=int(1e9), retries=2)
    svc = a.services.create(BUSYBOX, SERVE, name="web", networks=["web-net"], mode=ServiceMode("replicated", 2),
                            healthcheck=health, endpoint_spec=EndpointSpec(mode=swarm.networking().endpoint_mode),
                            labels={"app": "shop"})
    deadline = time.monotonic() + 60
    while len([t for t in svc.tasks() if t["Status"]["State"] == "running"]) < 2:
        assert time.monotonic() < deadline, f"the service did not start: {svc.tasks()}"
        time.sleep(0.3)
    yield svc, net
    svc.remove()


def test_the_swarm_is_active_as_the_student_sees_it_and_its_secrets_are_not_shown(a):
    info = a.info()["Swarm"]
    assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is True
    shown = a.api.inspect_swarm()
    assert "JoinTokens" not in shown and "TLSInfo" not in shown and shown["Spec"]["Labels"] == {}


def test_a_service_runs_with_the_sandbox_limits_in_the_students_namespace(a, web):
    svc, net = web
    real = engine.client().api.inspect_service(svc.id)["Spec"]  # as the engine really has it
    cs, limits = real["TaskTemplate"]["ContainerSpec"], real["TaskTemplate"]["Resources"]["Limits"]
    assert limits["MemoryBytes"] == 512 << 20 and limits["Pids"] == 256 and limits["NanoCPUs"] == 10 ** 9
    assert cs["CapabilityDrop"] == ["ALL"] and "SYS_ADMIN" not in cs["CapabilityAdd"]
    assert real["Name"].startswith("ck") and real["Labels"][TENANT] == cs["Labels"][TENANT]
    assert not real.get("EndpointSpec", {}).get("Ports")
    # as the student sees it: its own name and labels
    assert svc.name == "web" and a.services.get("web").attrs["Spec"]["Labels"] == {"app": "shop"}
    assert [s.name for s in a.services.list()] == ["web"]
    assert engine.client().networks.get(net.id).attrs["Internal"] is True


def test_a_task_is_reached_over_the_services_network_and_its_container_is_the_students(a, b, web):
    svc, _ = web
    probe = a.containers.run(BUSYBOX, ["sleep", "300"], detach=True, network="web-net")
    try:
        seen = set()
        for _ in range(40):
            code, out = probe.exec_run(["timeout", "3", "wget", "-qO-", "http://web:8000/"])
            if code == 0:
                seen.add(out.strip())
            if len(seen) == 2:
                break
            time.sleep(0.2)
        assert len(seen) == 2, f"two replicas should answer, saw {seen}"
    finally:
        probe.remove(force=True)
    cid = svc.tasks(filters={"desired-state": "running"})[0]["Status"]["ContainerStatus"]["ContainerID"]
    assert a.containers.get(cid).name.startswith("web.")
    refused(lambda: b.containers.get(cid), 404)


def test_another_students_service_and_tasks_are_invisible(b, web):
    svc, _ = web
    assert b.services.list() == [] and b.api.tasks() == []
    refused(lambda: b.services.get(svc.id), 404)
    refused(lambda: b.services.get("web"), 404)
    refused(lambda: b.api.remove_service(svc.id), 404)
    refused(lambda: b.api.tasks(filters={"service": svc.id}), 404)
    task = svc.tasks()[0]["ID"]
    refused(lambda: b.api.inspect_task(task), 404)


def test_a_service_scales_and_rolls_back_a_failing_update(a, web):
    svc, _ = web
    svc.reload()
    svc.scale(3)
    deadline = time.monotonic() + 60
    while len([t for t in svc.tasks() if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]) != 3:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    svc.reload()
    svc.scale(2)


def _spec(**container) -> dict:
    return {"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Command": ["sleep", "60"], **container}},
            "Mode": {"Replicated": {"Replicas": 1}}}


@pytest.mark.parametrize("change", [
    {"EndpointSpec": {"Ports": [{"TargetPort": 8000, "PublishedPort": 8000}]}},
    {"Mode": {"Replicated": {"Replicas": 1000}}},
    {"Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 100000}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Mounts": [{"Type": "bind", "Source": "/",
                                                                      "Target": "/host"}]}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "CapabilityAdd": ["CAP_SYS_ADMIN"]}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Privileges": {"SELinuxContext": {"Disable": True}}}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Sysctls": {"net.ipv4.ip_forward": "1"}}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Secrets": [{"SecretName": "x"}]}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX, "Isolation": "hyperv"}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX}, "Runtime": "plugin"}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX}, "PluginSpec": {"Name": "x"}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": "alpine:3.19"}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": "ghcr.io/acme/tool:1"}}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX}, "Networks": [{"Target": "ingress"}]}},
    {"TaskTemplate": {"ContainerSpec": {"Image": BUSYBOX}, "Networks": [{"Target": "bridge"}]}},
], ids=lambda c: json.dumps(c)[:60])
def test_a_service_that_would_reach_beyond_the_submission_is_refused(a, change):
    spec = {**_spec(), **change}
    status = 404 if "ingress" in json.dumps(change) or "alpine" in json.dumps(change) else 403
    refused(lambda: a.api._result(a.api._post_json(a.api._url("/services/create"), data=spec), True), status)
    assert a.services.list() == [] or [s.name for s in a.services.list()] == ["web"]


def test_an_update_is_checked_as_a_create_is(a, web):
    svc, _ = web
    svc.reload()
    refused(lambda: svc.update(mounts=[Mount("/host", "/", type="bind")]))
    refused(lambda: svc.update(mode=ServiceMode("replicated", 500)))


@pytest.mark.parametrize("call", ["init", "leave", "update", "nodes", "secret", "join"])
def test_the_swarm_itself_is_the_graders(a, call):
    do = {"init": lambda: a.swarm.init(advertise_addr="127.0.0.1"),
          "leave": lambda: a.swarm.leave(force=True),
          "update": lambda: a.api.update_swarm(version=1, rotate_worker_token=True),
          "nodes": lambda: a.nodes.list(),
          "secret": lambda: a.secrets.create(name="s", data=b"x"),
          "join": lambda: a.swarm.join(["127.0.0.1:2377"], "SWMTKN-1-x")}[call]
    refused(do)


def test_services_are_capped(gates, a, web):
    made = []
    try:
        with pytest.raises(docker.errors.APIError) as err:
            for i in range(gates[0].caps.services + 1):
                made.append(a.services.create(BUSYBOX, ["sleep", "60"], name=f"cap{i}"))
        assert err.value.status_code == 429 and len(made) == gates[0].caps.services - 1  # (web is one)
    finally:
        for s in made:
            s.remove()

