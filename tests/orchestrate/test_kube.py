"""One app description: a Swarm service that runs here, and Kubernetes manifests checked against the schemas."""
from __future__ import annotations

import uuid

import pytest
import yaml

from coursekit.docker import engine
from coursekit.orchestrate import kube, swarm
from coursekit.errors import OrchestrationError

WEB = kube.App("web", "coursekit/busybox:v1",
               command=["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8000 -h /www"],
               replicas=3, port=8000, health=["wget", "-qO-", "http://127.0.0.1:8000/"], autoscale=(2, 6, 70))


def test_manifests_are_valid_kubernetes():
    docs = kube.manifests(WEB)
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    assert kube.validate(docs) == []
    dep = docs[0]["spec"]
    assert dep["replicas"] == 3 and dep["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert dep["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["command"] == WEB.health


def test_yaml_round_trips_as_kubectl_reads_it():
    text = kube.to_yaml(kube.manifests(WEB))
    assert "&id" not in text
    assert list(yaml.safe_load_all(text)) == kube.manifests(WEB)


@pytest.mark.parametrize("break_it, where", [
    (lambda d: d[0]["spec"].update(replica=3), "'replica' was unexpected"),
    (lambda d: d[1]["spec"]["ports"][0].update(port="eighty"), "spec.ports.0.port"),
    (lambda d: d[0]["spec"]["template"]["spec"]["containers"][0].pop("image") and
     d[0]["spec"]["template"]["spec"]["containers"][0].pop("name"), "'name' is a required property"),
])
def test_mistakes_are_named_with_their_path(break_it, where):
    docs = kube.manifests(WEB)
    break_it(docs)
    problems = kube.validate(docs)
    assert problems and any(where in p for p in problems), problems


def test_bad_names_are_refused_for_both_orchestrators():
    with pytest.raises(OrchestrationError):
        kube.App("Web_App", "x")


def test_no_cluster_means_no_apply(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    ok, why = kube.cluster()
    assert not ok and "no kubeconfig" in why
    with pytest.raises(OrchestrationError):
        kube.apply(kube.manifests(WEB))


def test_a_kubeconfig_that_does_not_answer_is_not_a_cluster(monkeypatch, tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {"token": "t"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    ok, why = kube.cluster(timeout=1)
    assert not ok and "does not answer" in why


@pytest.mark.usefixtures("real_engine")
def test_the_same_app_runs_on_swarm():
    lesson = "test-kube"
    was = swarm.state()
    net = swarm.network(f"ck-test-kube-{uuid.uuid4().hex[:6]}", lesson=lesson)
    probe = swarm.Probe(net.name, lesson=lesson)
    kw = kube.swarm_kwargs(WEB)
    kw["name"] = f"web-{uuid.uuid4().hex[:6]}"
    try:
        svc = swarm.service(**kw, network=net.name, lesson=lesson)
        swarm.wait_replicas(svc, 3)
        assert engine.wait_until(lambda: probe.get(f"http://{kw['name']}:8000/"), timeout=15, what="an answer")
        svc.reload()
        spec = svc.attrs["Spec"]["TaskTemplate"]
        assert spec["Resources"]["Limits"]["MemoryBytes"] == 64 * 2**20
        assert spec["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD", *WEB.health]
    finally:
        probe.remove()
        for s in engine.client().services.list(filters={"name": kw["name"]}):
            s.remove()
        if was == "inactive":
            swarm.leave(engine.SESSION_ID)


def test_every_mistake_is_reported_not_only_the_first():
    docs = kube.manifests(WEB)
    docs[0]["spec"]["replicas"] = "3"
    docs[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 1
    problems = kube.validate(docs)
    assert len(problems) == 2, problems
    assert problems[0].startswith("Deployment web: at spec.replicas:")
    assert "readinessProbe" in problems[1] and "'periodSecond' was unexpected" in problems[1]


def test_what_cannot_be_checked_is_said_plainly():
    problems = kube.validate([{"kind": "Deployment", "metadata": {"name": "x"}},
                              {"apiVersion": "v1", "kind": "Nonsense", "metadata": {"name": "y"}}, "text"])
    assert "'apiVersion' missing" in problems[0]
    assert problems[1].startswith("Nonsense y: no schema to check it against")
    assert "must be a mapping" in problems[2]
    assert all("does not support version 1.99" in p for p in kube.validate(kube.manifests(WEB), "1.99"))
