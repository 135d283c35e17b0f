"""Swarm mode on one node: services reached through a probe, self-healing, rolling updates and rollback."""
from __future__ import annotations

import uuid

import pytest

from coursekit import engine, layers, swarm
from coursekit.errors import CoursekitError

pytestmark = pytest.mark.usefixtures("real_engine")
BUSYBOX = "coursekit/busybox:v1"
LESSON = "test-swarm"
# a web server whose page says which task answered, and which version it runs
SERVE = ["sh", "-c", "mkdir -p /www && echo \"$(hostname) ${VERSION:-v1}\" > /www/index.html && "
                     "exec httpd -f -p 8000 -h /www"]
HEALTHY = ["CMD", "wget", "-qO-", "http://127.0.0.1:8000/"]


@pytest.fixture(scope="module")
def net():
    was = swarm.state()
    swarm.init(LESSON)
    n = swarm.network(f"ck-test-swarm-{uuid.uuid4().hex[:6]}", lesson=LESSON)
    probe = swarm.Probe(n.name, lesson=LESSON)
    yield n, probe
    probe.remove()
    for s in engine.client().services.list(filters={"label": f"{engine.SESSION}={engine.SESSION_ID}"}):
        s.remove()
    if was == "inactive":
        assert swarm.leave(engine.SESSION_ID)
        assert swarm.state() == "inactive"


def _name() -> str:
    return f"ck-web-{uuid.uuid4().hex[:6]}"


def test_networking_is_detected_not_assumed(net):
    found = engine.run(BUSYBOX, ["sh", "-c", "test -e /proc/net/ip_vs && echo y || echo n"],
                       network_mode="host").decode().strip()
    nw = swarm.networking()
    assert nw.ipvs is (found == "y")
    assert nw.endpoint_mode == ("vip" if nw.ipvs else "dnsrr")


def test_replicas_answer_in_turn_and_scale(net):
    n, probe = net
    name = _name()
    svc = swarm.service(name, BUSYBOX, SERVE, network=n.name, replicas=3, lesson=LESSON)
    swarm.wait_replicas(svc, 3)
    assert len(probe.resolve(f"tasks.{name}")) == 3
    engine.wait_until(lambda: probe.get(f"http://{name}:8000/"), timeout=15, what="the service to answer")
    answers = {probe.get(f"http://{name}:8000/") for _ in range(9)}
    assert len({a.split()[0] for a in answers if a}) == 3, answers  # three tasks took turns
    svc.scale(1)
    swarm.wait_replicas(svc, 1)
    assert swarm.replicas(svc) == (1, 1)
    svc.remove()


def test_a_killed_task_is_replaced(net):
    n, _ = net
    svc = swarm.service(_name(), BUSYBOX, SERVE, network=n.name, replicas=2, lesson=LESSON)
    swarm.wait_replicas(svc, 2)
    killed = swarm.kill_a_task(svc)
    swarm.wait_healed(svc, killed, timeout=30)
    running_ids = swarm.running_containers(svc)
    assert killed not in running_ids and len(running_ids) == 2
    svc.remove()


def test_rolling_update_then_automatic_rollback_on_failed_health(net):
    n, probe = net
    name = _name()
    svc = swarm.service(name, BUSYBOX, SERVE, network=n.name, replicas=2, env=["VERSION=v1"],
                        health=swarm.healthcheck(HEALTHY), monitor=2, delay=0.2, lesson=LESSON)
    swarm.wait_replicas(svc, 2)
    svc.update(env=["VERSION=v2"])
    engine.wait_until(lambda: swarm.update_state(svc) == "completed", timeout=60, what="the update")
    engine.wait_until(lambda: {(probe.get(f"http://{name}:8000/") or "").split()[-1:] == ["v2"]
                               for _ in range(4)} == {True}, timeout=15, what="every task to serve v2")
    # v3's health check can never pass: the update must roll back to v2 by itself
    svc.update(env=["VERSION=v3"], healthcheck=swarm.healthcheck(["CMD", "false"]))
    engine.wait_until(lambda: swarm.update_state(svc) == "rollback_completed", timeout=90, what="the rollback")
    svc.reload()
    assert "VERSION=v2" in svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    svc.remove()


def test_a_replicated_job_runs_to_completion(net):
    n, _ = net
    job = swarm.service(_name(), BUSYBOX, ["sh", "-c", "echo work done"], network=n.name, replicas=4,
                        job=True, concurrency=2, lesson=LESSON)
    engine.wait_until(lambda: len(swarm.tasks(job, "complete")) == 4, timeout=60, what="the job's 4 tasks")
    job.remove()


def test_a_foreign_service_name_is_refused(net):
    n, _ = net
    name = _name()
    foreign = engine.client().services.create(BUSYBOX, ["sleep", "60"], name=name)
    try:
        with pytest.raises(CoursekitError, match="coursekit did not create it"):
            swarm.service(name, BUSYBOX, SERVE, network=n.name)
    finally:
        foreign.remove()
