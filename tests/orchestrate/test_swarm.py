"""Swarm mode on one node: services reached through a probe, self-healing, rolling updates and rollback."""
from __future__ import annotations

import json
import uuid

import pytest

from coursekit.docker import engine, layers
from coursekit.orchestrate import swarm
from coursekit.errors import OrchestrationError, RegistryError

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
    answers: set = set()  # the embedded DNS shuffles the tasks' addresses: ask until each task has answered
    for _ in range(40):
        answers |= {a.split()[0] for a in [probe.get(f"http://{name}:8000/")] if a}
        if len(answers) == 3:
            break
    assert len(answers) == 3, answers  # three tasks took turns
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


@pytest.mark.slow
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
        with pytest.raises(OrchestrationError, match="coursekit did not create it"):
            swarm.service(name, BUSYBOX, SERVE, network=n.name)
    finally:
        foreign.remove()


def test_scaling_keeps_the_running_tasks_and_stops_the_extra_ones(net):
    n, probe = net
    name = _name()
    svc = swarm.service(name, BUSYBOX, SERVE, network=n.name, replicas=2, health=swarm.healthcheck(HEALTHY),
                        lesson=LESSON)
    swarm.wait_replicas(svc, 2)
    first = swarm.running_containers(svc)
    swarm.scale(svc, 4)
    assert swarm.replicas(svc) == (4, 4)
    assert first <= swarm.running_containers(svc), "scaling up restarted tasks that were running"
    swarm.scale(svc, 1)
    still_running = [t for t in svc.tasks() if t["Status"]["State"] == "running"]
    assert len(still_running) == 1 and swarm.replicas(svc) == (1, 1)
    assert len(probe.resolve(f"tasks.{name}")) == 1
    with pytest.raises(OrchestrationError):
        swarm.scale(svc, "3")
    svc.remove()


def test_bad_durations_and_health_tests_are_refused_with_a_fix():
    was = swarm.state()
    with pytest.raises(OrchestrationError, match="monitor is a number of seconds") as err:
        swarm.service("ck-never", BUSYBOX, network="none-needed", monitor="3s")
    assert "not '3s'" in err.value.fix
    with pytest.raises(OrchestrationError, match="starts with 'CMD'"):
        swarm.healthcheck(["wget", "-qO-", "http://127.0.0.1:8000/"])
    assert swarm.state() == was, "a refused service must not turn swarm mode on"


def test_version_of_reads_the_tag():
    assert swarm.version_of("127.0.0.1:5000/web:v2@sha256:" + "0" * 64) == "v2"
    assert swarm.version_of("127.0.0.1:5000/web") == "latest"
    assert swarm.version_of("coursekit/busybox:v1") == "v1"


def test_a_task_whose_health_check_fails_is_replaced(net):
    n, _ = net
    svc = swarm.service(_name(), BUSYBOX, ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && "
                                                       "exec httpd -f -p 8000 -h /www"],
                        network=n.name, replicas=2, health=swarm.healthcheck(HEALTHY), restart_delay=0.5,
                        lesson=LESSON)
    swarm.wait_replicas(svc, 2)
    sick = min(swarm.running_containers(svc))
    engine.client().containers.get(sick).exec_run(["rm", "/www/index.html"])
    timeline = swarm.watch_task(svc, sick, timeout=40)
    states = [what for _, what, _, _ in timeline]
    assert states[0] == "healthy" and "unhealthy" in states, timeline
    assert timeline[-1][2:] == (2, 2) and sick not in swarm.running_containers(svc)
    svc.reload()
    assert svc.attrs["Spec"]["TaskTemplate"]["RestartPolicy"]["Delay"] == 5 * 10**8
    svc.remove()


@pytest.fixture(scope="module")
def pushed():
    """The course registry with web:v1, web:v2 and a web:v3 whose health page is missing."""
    from coursekit.docker import registry

    reg = registry.start(lesson=LESSON)
    tags, digests = [], {}
    script = "mkdir -p /www && echo \"$VERSION $(hostname)\" > /www/index.html && {health}exec httpd -f -p 8000 -h /www"
    for version in ("v1", "v2", "v3"):
        health = "" if version == "v3" else "echo ok > /www/health && "
        dockerfile = (f"FROM {BUSYBOX}\nENV VERSION={version}\n"
                      f"CMD [\"sh\", \"-c\", {json.dumps(script.format(health=health))}]\n")
        tag = f"coursekit-scratch/test-swarm-web:{version}-{uuid.uuid4().hex[:6]}"
        tags.append(tag)
        digests[version] = reg.push(layers.build_example(dockerfile, tag), "web", version).digest
    yield reg, digests
    reg.stop()
    cl = engine.client()
    for tag in tags:  # a removed service's containers go a moment later; then the image can go
        engine.wait_until(lambda t=tag: not cl.containers.list(all=True, filters={"ancestor": t}), timeout=30,
                          what=f"the containers of {tag} to go")
        layers.remove_example(tag)


def test_registry_images_are_pinned_to_their_digest(net, pushed):
    reg, digests = pushed
    assert swarm.pinned(f"{reg.host}/web:v1") == f"{reg.host}/web:v1@{digests['v1']}"
    assert swarm.pinned(BUSYBOX) == BUSYBOX  # a local image: no registry to ask
    with pytest.raises(RegistryError, match="push the image there first"):
        swarm.pinned(f"{reg.host}/web:nope")


@pytest.mark.slow
def test_rolling_update_by_digest_then_a_broken_version_rolls_back(net, pushed):
    n, probe = net
    reg, digests = pushed
    name = _name()
    svc = swarm.service(name, f"{reg.host}/web:v1", network=n.name, replicas=2, monitor=2, delay=0.2,
                        health=swarm.healthcheck(["CMD", "wget", "-qO-", "http://127.0.0.1:8000/health"]),
                        lesson=LESSON)
    swarm.wait_replicas(svc, 2)
    assert svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].endswith(digests["v1"])
    rollout = swarm.watch_update(swarm.update(svc, f"{reg.host}/web:v2"), probe,
                                                          f"http://{name}:8000/")
    assert rollout[-1]["state"] == "completed" and rollout[-1]["versions"] == {"v2": 2}, rollout[-1]
    assert {"v1", "v2"} >= {a for s in rollout for a in s["answers"]}, "a request went unanswered"
    assert any(s["versions"] == {"v1": 1, "v2": 1} for s in rollout), "not one task at a time"
    bad = swarm.watch_update(swarm.update(svc, f"{reg.host}/web:v3"), probe, f"http://{name}:8000/")
    assert bad[-1]["state"] == "rollback_completed", bad[-1]
    assert all(s["versions"] == {"v2": 2} for s in bad), "v3 never got healthy, so v2 kept running"
    assert {a for s in bad for a in s["answers"]} == {"v2"}
    svc.reload()
    assert svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].endswith(digests["v2"])
    svc.remove()


def test_a_bad_update_policy_is_refused_before_anything_is_created():
    with pytest.raises(OrchestrationError, match="not a valid update policy") as err:
        swarm.service("ck-never", BUSYBOX, network="none-needed", order="start first")
    assert "start-first" in err.value.fix


@pytest.mark.slow
def test_a_service_whose_image_cannot_be_pulled_says_why(net):
    n, _ = net
    svc = swarm.service(_name(), "127.0.0.1:9/nowhere/web:1", SERVE, network=n.name, replicas=1, pin=False,
                        lesson=LESSON)
    try:
        with pytest.raises(OrchestrationError) as err:
            swarm.wait_replicas(svc, 1, timeout=20)
        assert "a task failed" in err.value.problem and "nowhere/web" in err.value.problem, err.value.problem
    finally:
        svc.remove()


def test_the_live_view_shows_the_tasks_as_they_change(net):
    from coursekit.orchestrate import swarmview

    n, _ = net
    svc = swarm.service(_name(), BUSYBOX, SERVE, network=n.name, replicas=2, lesson=LESSON)
    try:
        swarm.wait_replicas(svc, 2)
        table = swarmview.task_table(svc)
        assert "<b>2</b> running of <b>2</b> desired" in table and table.count("<tr>") == 3
        killed = swarm.kill_a_task(svc)
        swarm.wait_healed(svc, killed, timeout=30)
        table = swarmview.task_table(svc)
        assert killed[:12] in table and "failed" in table, table  # the dead task is listed, in red
    finally:
        svc.remove()
