"""One description of a service, two orchestrators: Swarm (run here) and Kubernetes (validated, applied
only where a cluster answers).

:class:`App` says what to run: image, command, replicas, port, health check, update policy,
resources and autoscaling. :func:`swarm_kwargs` turns it into the arguments of
:func:`coursekit.orchestrate.swarm.service`; :func:`manifests` into a Kubernetes Deployment, Service and
HorizontalPodAutoscaler; :func:`validate` checks those against the official Kubernetes
OpenAPI schemas (the ``kubernetes-validate`` package, offline); :func:`apply` sends them
to a real cluster with the official client, but only if :func:`cluster` finds one.
Nothing here pretends a cluster ran anything.

Lesson: ``07-orchestration``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import OrchestrationError

#: The Kubernetes version whose schemas we validate against (one kubernetes-validate ships).
KUBERNETES_VERSION = "1.30.0"

#: Swarm word -> Kubernetes word, and what it means: the lesson's side-by-side table.
CONCEPTS = [
    ("service (docker service create)", "Deployment + Service", "a long-running app and how to reach it"),
    ("task", "Pod", "one running copy of the app (a container plus its settings)"),
    ("--replicas N", "spec.replicas: N", "how many copies should run"),
    ("docker service scale", "kubectl scale / HorizontalPodAutoscaler", "change the copies by hand / by load"),
    ("HEALTHCHECK / --health-cmd", "livenessProbe + readinessProbe", "is it alive? may it get traffic?"),
    ("--update-parallelism, --update-delay", "strategy.rollingUpdate (maxSurge, maxUnavailable)",
     "how many copies change at a time"),
    ("--update-order start-first", "maxSurge: 1, maxUnavailable: 0", "start the new copy before stopping one"),
    ("--update-failure-action rollback", "kubectl rollout undo (progressDeadlineSeconds)",
     "go back to the last good version"),
    ("overlay network + service name (DNS)", "Service (ClusterIP) + cluster DNS", "find the copies by name"),
    ("--endpoint-mode dnsrr", "Service with clusterIP: None (headless)", "DNS returns every copy's address"),
    ("--limit-cpu / --limit-memory", "resources.limits", "the most a copy may use"),
    ("--reserve-cpu / --reserve-memory", "resources.requests", "what the scheduler sets aside"),
    ("--mode replicated-job", "Job (completions, parallelism)", "run to completion, N times"),
]


@dataclass
class App:
    """What to run, independent of the orchestrator."""

    name: str
    image: str
    command: Optional[list[str]] = None
    replicas: int = 2
    port: Optional[int] = None                  # the port the app listens on inside the container
    env: dict[str, str] = field(default_factory=dict)
    health: Optional[list[str]] = None          # a command that exits 0 when healthy, e.g. ["wget", "-qO-", URL]
    health_interval: int = 5                    # seconds
    health_retries: int = 3
    update_parallelism: int = 1                 # copies replaced at a time
    update_delay: int = 2                       # seconds between batches
    start_first: bool = True                    # start a new copy before stopping an old one
    cpu: str = "250m"                           # Kubernetes quantity: 250m = a quarter of a CPU
    memory: str = "64Mi"
    autoscale: Optional[tuple[int, int, int]] = None  # (min, max, target CPU %)

    def __post_init__(self):
        import re

        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", self.name or ""):
            raise OrchestrationError(f"{self.name!r} cannot name a service in both orchestrators",
                                     "use lower-case letters, digits and '-', starting and ending with a letter "
                                     "or digit (at most 63 characters)")
        if self.replicas < 0:
            raise OrchestrationError(f"replicas must be 0 or more, not {self.replicas}", "e.g. replicas=2")


def _cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, mult in units.items():
        if quantity.endswith(suffix):
            return int(quantity[:-2]) * mult
    return int(quantity)


def swarm_kwargs(app: App) -> dict:
    """Arguments for :func:`coursekit.orchestrate.swarm.service` (add ``network=``)."""
    from ..docker import sdk

    Resources = sdk.types().Resources

    from . import swarm

    kw: dict[str, Any] = dict(name=app.name, image=app.image, command=app.command, replicas=app.replicas,
                              parallelism=app.update_parallelism, delay=app.update_delay,
                              order="start-first" if app.start_first else "stop-first",
                              env=[f"{k}={v}" for k, v in app.env.items()],
                              resources=Resources(cpu_limit=int(_cpus(app.cpu) * 1e9),
                                                  mem_limit=_bytes(app.memory)))
    if app.health:
        kw["health"] = swarm.healthcheck(["CMD", *app.health], interval=app.health_interval,
                                         retries=app.health_retries)
    return kw


def manifests(app: App) -> list[dict]:
    """A Deployment, a Service (if the app has a port) and an HPA (if it autoscales), as dicts."""
    labels = {"app.kubernetes.io/name": app.name, "app.kubernetes.io/managed-by": "coursekit"}
    container: dict[str, Any] = {
        "name": app.name, "image": app.image,
        "resources": {"requests": {"cpu": app.cpu, "memory": app.memory},
                      "limits": {"cpu": app.cpu, "memory": app.memory}},
    }
    if app.command:
        container["command"] = list(app.command)
    if app.env:
        container["env"] = [{"name": k, "value": str(v)} for k, v in app.env.items()]
    if app.port:
        container["ports"] = [{"containerPort": app.port, "protocol": "TCP"}]
    if app.health:
        probe = {"exec": {"command": list(app.health)}, "periodSeconds": app.health_interval,
                 "failureThreshold": app.health_retries}
        container["livenessProbe"] = probe
        container["readinessProbe"] = copy.deepcopy(probe)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app.name, "labels": labels},
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": app.update_parallelism if app.start_first else 0,
                "maxUnavailable": 0 if app.start_first else app.update_parallelism}},
            "minReadySeconds": app.update_delay,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    out = [deployment]
    if app.port:
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app.name, "labels": labels},
                    "spec": {"selector": {"app.kubernetes.io/name": app.name},
                             "ports": [{"port": app.port, "targetPort": app.port, "protocol": "TCP"}]}})
    if app.autoscale:
        lo, hi, cpu = app.autoscale
        out.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": app.name, "labels": labels},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app.name},
                             "minReplicas": lo, "maxReplicas": hi,
                             "metrics": [{"type": "Resource", "resource": {
                                 "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]}})
    return out


def to_yaml(docs: list[dict]) -> str:
    """The manifests as one multi-document YAML file, as ``kubectl apply -f`` reads it."""
    import yaml

    class NoAliases(yaml.SafeDumper):  # spell shared label dicts out instead of &id001 anchors
        def ignore_aliases(self, data):
            return True
    return "---\n".join(yaml.dump(d, Dumper=NoAliases, sort_keys=False) for d in docs)


def _validator(doc: dict, version: str):
    """A JSON-schema validator for ``doc``'s kind, from the strict official schemas kubernetes-validate ships."""
    import re

    import jsonschema
    from kubernetes_validate import utils
    from packaging.version import Version
    from referencing import Registry, Resource

    want = utils.major_minor(version.lstrip("v"))
    known = utils.all_versions()  # oldest first
    found = [v for v in known if Version(utils.major_minor(v)) <= Version(want)]
    if not found or Version(want) > Version(utils.major_minor(known[-1])):
        raise utils.VersionNotSupportedError(want)
    folder = f"kubernetes-json-schema/v{found[-1]}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(doc["apiVersion"]))
    try:
        schema = utils.schema_contents(f"{folder}/{str(doc['kind']).lower()}-{api}.json", version)
    except FileNotFoundError:
        raise utils.SchemaNotFoundError(kind=doc["kind"], version=want, api_version=doc["apiVersion"]) from None
    defs = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate(docs: list[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    """Check each manifest against the official schema of ``version``; returns every problem (``[]``: valid).

    Strict: a misspelt field (``replica:``) is an error, as ``kubectl apply --validate=strict`` makes it.
    Each problem names the manifest and the path to the field, e.g.
    ``Deployment web: at spec.replicas: '3' is not of type 'integer', 'null'``.
    """
    import kubernetes_validate as kv
    from kubernetes_validate import utils

    problems = []
    for doc in docs:
        if not isinstance(doc, dict):
            problems.append(f"a manifest must be a mapping (a dict), not {type(doc).__name__}")
            continue
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        what = f"{doc.get('kind', '?')} {meta.get('name', '?')}"
        missing = [k for k in ("apiVersion", "kind") if not doc.get(k)]
        if missing:
            problems.append(f"{what}: at (top): {' and '.join(map(repr, missing))} missing: every manifest says "
                            "which kind of object it is and its API group/version (e.g. apps/v1, Deployment)")
            continue
        try:
            try:
                errors = sorted(_validator(doc, version).iter_errors(doc), key=lambda e: [str(p) for p in e.path])
            except AttributeError:  # another kubernetes-validate layout: its own check, first problem only
                errors = []
                try:
                    kv.validate(doc, version, strict=True)
                except kv.ValidationError as exc:
                    errors = [exc]
        except (utils.SchemaNotFoundError, utils.VersionNotSupportedError, utils.InvalidSchemaError) as exc:
            problems.append(f"{what}: no schema to check it against ({getattr(exc, 'message', exc)})")
            continue
        for exc in errors:
            path = ".".join(str(p) for p in exc.path) or "(top)"
            problems.append(f"{what}: at {path}: {exc.message}")
    return problems


def cluster(timeout: float = 3.0) -> tuple[bool, str]:
    """Is there a Kubernetes cluster to apply to? (a kubeconfig whose API server answers) and why."""
    import os

    try:
        from kubernetes import client, config
    except ImportError:
        return False, "the kubernetes Python package is not installed"
    path = os.environ.get("KUBECONFIG", os.path.expanduser("~/.kube/config"))
    if not os.path.exists(path.split(os.pathsep)[0]):
        return False, f"no kubeconfig ({path}): no cluster is configured on this machine"
    try:
        config.load_kube_config()
        api = client.VersionApi()
        info = api.get_code(_request_timeout=timeout)
        return True, f"cluster {api.api_client.configuration.host} answers (Kubernetes {info.git_version})"
    except Exception as exc:
        return False, f"the kubeconfig names a cluster that does not answer ({type(exc).__name__}: {str(exc)[:120]})"


def apply(docs: list[dict], namespace: str = "default") -> list[str]:
    """Create the manifests on the configured cluster (only if :func:`cluster` says one answers)."""
    ok, why = cluster()
    if not ok:
        raise OrchestrationError(f"no Kubernetes cluster to apply to: {why}",
                                 "validating the manifests is as far as the lesson goes here; with a cluster "
                                 "(kind, minikube, a cloud one) and its kubeconfig, run this again")
    from kubernetes import client, utils

    created = []
    for doc in docs:
        utils.create_from_dict(client.ApiClient(), doc, namespace=namespace)
        created.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return created
