"""The deploy actions of :mod:`coursekit.cicd.pipeline`: a container, or a Swarm service via the registry.

* ``Custom/Deploy/coursekit-Container`` (ours): ``docker build`` of the input artifact's
  ``Dockerfile`` (default ``Dockerfile``), then the container ``ContainerName`` (default
  ``<pipeline>-<action>``) replaced by one of the new image, with ``ContainerPort`` (default
  8000) published on 127.0.0.1, and asked for ``HealthCheckPath`` (default ``/``): the action
  succeeds when it answers below HTTP 400. The old container stops before the new one starts:
  an all-at-once deploy, with a moment without service.
* ``Custom/Deploy/coursekit-Swarm`` (ours): the image built the same way, pushed to the course
  registry (:mod:`coursekit.docker.registry`) as ``<Repository>:<execution id[:8]>``, and the Swarm
  service ``ServiceName`` created with ``Replicas`` tasks, or rolled to the pushed digest
  (:mod:`coursekit.orchestrate.swarm`: start-first, one task at a time, automatic rollback). The action
  waits for the rolling update to end, fails if it rolled back, and checks that every running
  task runs the pushed digest. With ``ContainerPort``, a probe container on the service's
  network asks the service for ``HealthCheckPath``.

The image is built in the deploy action because the build containers have no Docker engine
(CodeBuild would need privileged mode, and ECR, for that). Images, services and networks made
here are remembered by the pipeline, and ``Pipeline.teardown()`` removes them; everything is
labelled by :mod:`coursekit.docker.engine`, so the session's clean-up removes it too. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import atexit
import contextlib
import io
import time
import zipfile
from typing import Any

from ...errors import CoursekitError
from ...docker.labels import PIPELINE_LABEL, ROLE_LABEL
from .actions import ActionFailed, Context, slug


def _build_image(ctx: Context) -> tuple[str, Any]:
    """``docker build`` of the input artifact; returns the image's tag and the image."""
    from ...docker import layers

    files: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(ctx.inputs[ctx.action.inputs[0]])) as zf:
        for n in zf.namelist():
            if not n.endswith("/"):
                files[n] = zf.read(n)
    dockerfile = ctx.config.get("Dockerfile", "Dockerfile")
    if dockerfile not in files:
        raise ActionFailed(f"the input artifact has no {dockerfile} (its files: {', '.join(sorted(files)) or 'none'}):"
                           f" list {dockerfile} in the buildspec's artifacts.files")
    text = files.pop(dockerfile).decode()
    tag = f"{_local_repo(ctx)}:{ctx.execution_id[:8]}"
    t0 = time.monotonic()
    try:
        image = layers.build_example(text, tag, files)
    except CoursekitError as exc:
        raise ActionFailed(f"docker build failed: {exc.problem}") from None
    _remember(ctx, tag)
    ctx.log(f"Built image {tag} ({image.short_id}) in {time.monotonic() - t0:.1f} s")
    return tag, image


_MADE: set[str] = set()  # every image name the deploys of this process made: removed at exit


def _remember(ctx: Context, tag: str) -> None:
    if not _MADE:
        atexit.register(_remove_made)
    _MADE.add(tag)
    ctx.pipeline._images.add(tag)


def _local_repo(ctx: Context) -> str:
    """Where an action's images are tagged: one repository per pipeline and action, a tag per execution."""
    return f"coursekit-pipeline/{slug(ctx.pipeline.name)}-{slug(ctx.action.name)}"


def _forget_older(ctx: Context, *repos: str) -> None:
    """After a successful deploy: untag the action's images of earlier executions (unless still in use)."""
    from ...docker import layers

    for tag in sorted(ctx.pipeline._images):
        if tag.rsplit(":", 1)[0] in repos and not tag.endswith(":" + ctx.execution_id[:8]):
            with contextlib.suppress(Exception):
                layers.remove_example(tag)
                ctx.pipeline._images.discard(tag)
                _MADE.discard(tag)


def _remove_made() -> None:
    """At exit: the session's containers and services go first (engine.cleanup), then the images they used."""
    from ...docker import engine, layers

    if not engine.answered_before():
        return
    engine.cleanup()
    for tag in sorted(_MADE):
        with contextlib.suppress(Exception):
            layers.remove_example(tag)


def _port(ctx: Context, default: str | None = "8000") -> int | None:
    value = ctx.config.get("ContainerPort", default)
    if value is None:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ActionFailed(f"ContainerPort {value!r} is not a port number")
    return int(value)


def container_deploy(ctx: Context) -> None:
    from ...docker import engine

    tag, _ = _build_image(ctx)
    name = ctx.config.get("ContainerName") or f"{slug(ctx.pipeline.name)}-{slug(ctx.action.name)}"
    port, path = _port(ctx), ctx.config.get("HealthCheckPath", "/")
    labels = {PIPELINE_LABEL: ctx.pipeline.name, ROLE_LABEL: "pipeline-deploy"}
    try:
        c = engine.run(tag, detach=True, name=name, ports={f"{port}/tcp": None}, init=True, labels=labels,
                       lesson=ctx.pipeline.lesson)
        host = engine.host_port(c, port)
        ctx.log(f"Started container {name} from {tag}, port {port} published on 127.0.0.1:{host}")
        status, body = engine.wait_http(host, path, timeout=30, container=c)
    except CoursekitError as exc:
        raise ActionFailed(f"the new container did not answer: {exc.problem}") from None
    answer = body.decode(errors="replace").strip().splitlines()[0][:200] if body else ""
    url = f"http://127.0.0.1:{host}{path}"
    ctx.summary.update(url=url, container=name, image=tag, answer=answer)
    ctx.log(f"GET {url} -> HTTP {status}: {answer}")
    if status >= 400:
        raise ActionFailed(f"the new container answered HTTP {status} on {path}")
    _forget_older(ctx, _local_repo(ctx))


def swarm_deploy(ctx: Context) -> None:
    from ...docker import engine

    local, _ = _build_image(ctx)
    name = ctx.config["ServiceName"]
    replicas = ctx.config.get("Replicas", "1")
    if not replicas.isdigit():
        raise ActionFailed(f"Replicas {replicas!r} is not a whole number")
    port = _port(ctx, None)
    try:
        with engine.explaining(what=f"deploying service {name}"):
            network = _push_and_roll(ctx, local, name, int(replicas))
            if port is not None:
                _probe(ctx, network, f"http://{name}:{port}{ctx.config.get('HealthCheckPath', '/')}")
    except CoursekitError as exc:
        raise ActionFailed(f"{exc.problem}" + (f" ({exc.fix})" if exc.fix else "")) from None
    _forget_older(ctx, _local_repo(ctx), ctx.summary["image"].split("@")[0].rsplit(":", 1)[0])


def _push_and_roll(ctx: Context, local: str, name: str, replicas: int) -> str:
    """Push the image, create or update the service, wait until every task runs it; returns the network."""
    from ...docker import engine, registry
    from ...orchestrate import swarm

    repo, tag = ctx.config.get("Repository") or slug(ctx.pipeline.name), ctx.execution_id[:8]
    reg = registry.start(lesson=ctx.pipeline.lesson)
    pushed = reg.push(local, repo, tag)
    ref = reg.reference(repo, tag)
    _remember(ctx, ref)
    ctx.log(f"Pushed {ref}: {pushed.digest}")
    net = swarm.network(f"ck-pipeline-{slug(ctx.pipeline.name)}", lesson=ctx.pipeline.lesson)
    ctx.pipeline._networks.add(net.name)
    old = [s for s in engine.client().services.list(filters={"name": name}) if s.name == name]
    if old and engine.is_ours(old[0].attrs["Spec"].get("Labels")):
        svc = old[0]
        before = (svc.attrs.get("UpdateStatus") or {}).get("StartedAt")
        swarm.update(svc, image=ref)
        ctx.log(f"Rolling service {name} to {pushed.digest[:19]}... (start-first, one task at a time)")
        state = _wait_update(svc, before)
        ctx.log(f"Rolling update: {state}")
        if state != "completed":
            raise ActionFailed(f"the rolling update of {name} ended {state}: the new version failed and the "
                               "previous one is running again")
    else:
        svc = swarm.service(name, ref, network=net.name, replicas=replicas, delay=0.5, monitor=2,
                            lesson=ctx.pipeline.lesson)
        ctx.log(f"Created service {name} ({replicas} replicas) from {ref}")
    ctx.pipeline._services.add(name)
    engine.wait_until(lambda: _all_on(svc, pushed.digest), timeout=90, what=f"{name} to run {pushed.digest[:19]}")
    ctx.summary.update(service=name, image=f"{ref}@{pushed.digest}", digest=pushed.digest,
                       replicas=swarm.replicas(svc)[0], state=swarm.update_state(svc))
    return net.name


def _wait_update(svc: Any, before: str | None, timeout: float = 120) -> str:
    from ...docker import engine
    from ...orchestrate import swarm

    def ended():
        svc.reload()
        st = svc.attrs.get("UpdateStatus") or {}
        return st.get("State") if st.get("StartedAt") != before and st.get("State") in swarm.TERMINAL else None
    return engine.wait_until(ended, timeout=timeout, interval=0.3, what=f"the rolling update of {svc.name}")


def _all_on(svc: Any, digest: str) -> bool:
    from ...orchestrate import swarm

    running, desired = swarm.replicas(svc)
    images = [t["Spec"]["ContainerSpec"]["Image"] for t in swarm.tasks(svc)]
    return running == desired and all(i.endswith(digest) for i in images)


def _probe(ctx: Context, network: str, url: str) -> None:
    from ...docker import engine
    from ...orchestrate import swarm

    probe = swarm.Probe(network, lesson=ctx.pipeline.lesson)
    try:
        answer = engine.wait_until(lambda: probe.get(url), timeout=30, what=f"{url} to answer")
    except CoursekitError:
        raise ActionFailed(f"the service did not answer {url} within 30 s") from None
    finally:
        probe.remove()
    ctx.summary["answer"] = answer.strip().splitlines()[0][:200] if answer.strip() else ""
    ctx.log(f"GET {url} (from a probe on {network}) -> {ctx.summary['answer']}")


def forget(tag: str) -> None:
    """``tag`` was removed by someone else (``Pipeline.teardown``): not to be removed again at exit."""
    _MADE.discard(tag)


#: What runs each deploy action type.
PROVIDERS = {("Custom", "Deploy", "coursekit-Container"): container_deploy,
             ("Custom", "Deploy", "coursekit-Swarm"): swarm_deploy}
