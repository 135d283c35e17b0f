"""A CodePipeline-shaped pipeline that really runs: Source -> Build -> Test -> Deploy, on this machine.

::

    sb = coursekit.aws.sandbox()
    pipe = coursekit.cicd.pipeline.Pipeline("pipeline.yml", projects={"app-tests": {"env": {"X": "1"}}})
    ex = pipe.run()              # stages as coloured boxes, redrawn while it runs
    ex.retry()                   # after fixing what failed: the failed stage again, then onwards
    pipeline.timing_chart(ex)    # how long each action took, attempt by attempt
    pipe.teardown()              # remove what the deploys started

The definition is CodePipeline's own document (``pipeline: {name, roleArn, artifactStore,
stages: [{name, actions: [{name, actionTypeId: {category, owner, provider, version}, runOrder,
configuration, inputArtifacts, outputArtifacts}]}]}``), checked by CodePipeline's structural
rules in :mod:`coursekit.cicd.pipeline.definition` and registered, unchanged, in the AWS sandbox's
CodePipeline (moto), which stores it and runs nothing. The execution is ours
(:mod:`coursekit.cicd.pipeline.execution`): artifacts are zips in the sandbox's S3, builds and tests are
real buildspec runs in containers, deploys start a real container or roll a real Swarm
service (:mod:`coursekit.cicd.pipeline.actions` lists the providers). Pictures are in
:mod:`coursekit.cicd.pipeline.view`.

Where it differs from CodePipeline, in short (each module's docstring has the details):

* moto records the pipeline and an execution id per run, and nothing else: it runs nothing;
* ``roleArn`` and ``artifactStore`` may be left out (coursekit fills them in); stage
  conditions, triggers, variables and action namespaces are kept but not acted on;
* the coursekit action types (owner ``Custom``: ``coursekit-Git``, ``coursekit-Container``,
  ``coursekit-Swarm``) exist without ``CreateCustomActionType``; only S3 and coursekit-Git
  sources, CodeBuild builds/tests (one input, at most one output) and those deploys run;
* parallel actions (same ``runOrder``) run in threads of this process; a run blocks until it
  ends; the deploy builds the Docker image (the build containers have no Docker engine);
* artifact keys are ``<pipeline[:20]>/<artifact[:10]>/<7 random characters>``; CodeBuild's
  own copy of a build's zip also lands in the artifact bucket.

``projects`` stands for the CodeBuild projects the ``ProjectName`` configurations name: for
each, where its buildspec is (default ``buildspec.yml`` in the source; a path in the source,
or the YAML itself) and its environment variables. They live outside the pipeline, as CodeBuild
projects do, so changing one and calling ``retry()`` is allowed; changing the definition
means a new :class:`Pipeline`.

Lesson: ``08-ci-cd`` (and the capstone). Needs the AWS sandbox; builds and deploys need the
Docker engine (without one, those actions fail with the engine's reason).
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import definition as pipelinedef
from ...errors import CICDError, CoursekitError
from ...docker.labels import PIPELINE_LABEL
from ...ui.notebook import in_notebook
from .actions import ActionFailed, Project
from .definition import load
from .model import PipelineDef, PipelineError
from .rules import ACTION_TYPES
from ...ui.progress import Progress
from .execution import FAILED, IDLE, IN_PROGRESS, STOPPED, SUCCEEDED, Execution
from .view import PipelineView, timing_chart

__all__ = ["ACTION_TYPES", "FAILED", "IDLE", "IN_PROGRESS", "PIPELINE_LABEL", "STOPPED", "SUCCEEDED",
           "ActionFailed", "Execution", "Pipeline", "PipelineDef", "PipelineError", "PipelineView", "Project",
           "load", "timing_chart"]


def _project(name: str, value: Any) -> Project:
    if isinstance(value, Project):
        return value
    if value is None or isinstance(value, str):
        return Project(buildspec=value)
    if isinstance(value, Mapping) and set(value) <= {"buildspec", "env", "timeout"}:
        return Project(value.get("buildspec"), dict(value.get("env") or {}), float(value.get("timeout", 300)))
    raise CICDError(f"project {name!r}: {value!r} is not a project's settings",
                    "give {'buildspec': 'path/or/yaml', 'env': {'NAME': 'value'}} (both optional)")


class Pipeline:
    """A checked pipeline definition, registered in the sandbox, ready to :meth:`run`."""

    def __init__(self, definition: str | Path | dict | PipelineDef, *, sandbox: Any = None,
                 projects: Mapping[str, Any] | None = None, lesson: str | None = None):
        self.definition = definition if isinstance(definition, PipelineDef) else pipelinedef.load(definition)
        if sandbox is None:
            from ... import aws

            sandbox = aws.active()
        if sandbox is None:
            raise CICDError("a pipeline needs the AWS sandbox: its artifacts are stored in S3 and it is "
                            "registered in CodePipeline (both moto)",
                            "start it first: sb = coursekit.aws.sandbox()")
        self.sandbox, self.lesson = sandbox, lesson
        self.bucket = self.definition.bucket or pipelinedef.default_bucket(sandbox)
        self._ensure_bucket()
        self.metadata = pipelinedef.register(self.definition, sandbox)
        self.projects: dict[str, Project] = {k: _project(k, v) for k, v in (projects or {}).items()}
        self.executions: list[Execution] = []
        self._images: set[str] = set()
        self._services: set[str] = set()
        self._networks: set[str] = set()

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def latest(self) -> Execution | None:
        return self.executions[-1] if self.executions else None

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}: {len(self.definition.stages)} stages, {len(self.executions)} executions>"

    def _repr_html_(self) -> str:
        return PipelineView(self, self.latest).html()

    def _ensure_bucket(self) -> None:
        s3 = self.sandbox.client("s3")
        try:
            s3.head_bucket(Bucket=self.bucket)
        except Exception:
            region = getattr(self.sandbox, "region", "us-east-1")
            kw = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=self.bucket, **kw)

    def run(self, *, progress: Progress = print, show: bool = True) -> Execution:
        """Start an execution and run it to the end (or to the first failed stage); returns it.

        ``progress`` gets every log line (None: quiet); ``show``: in a notebook, draw the stages
        and redraw them while the execution runs (assign the result, ``ex = pipe.run()``, or the
        notebook shows the finished picture a second time as the cell's value).
        """
        cp = self.sandbox.client("codepipeline")
        execution_id = cp.start_pipeline_execution(name=self.name)["pipelineExecutionId"]
        ex = Execution(self, execution_id)
        self.executions.append(ex)
        if show:
            if in_notebook():
                ex.show()
        return ex._go(0, None, progress)

    def view(self) -> PipelineView:
        """The stages as boxes, coloured by the latest execution's state (or all idle)."""
        return PipelineView(self, self.latest)

    def teardown(self) -> list[str]:
        """Remove what this pipeline's deploys started: containers, services, networks, images."""
        from ...docker import engine, layers
        from . import deploy

        gone: list[str] = []
        if not engine.available():
            return gone
        cl = engine.client()
        flt = {"label": [f"{PIPELINE_LABEL}={self.name}", f"{engine.SESSION}={engine.SESSION_ID}"]}
        for c in cl.containers.list(all=True, filters=flt, sparse=True):  # (sparse: no inspect that can race)
            engine.remove_quietly(c)
            gone.append(f"container {(c.attrs.get('Names') or [c.short_id])[0].lstrip('/')}")
        for name in sorted(self._services):
            with contextlib.suppress(Exception):
                for svc in cl.services.list(filters={"name": name}):
                    if svc.name == name and engine.is_ours(svc.attrs["Spec"].get("Labels")):
                        svc.remove()
                        gone.append(f"service {name}")
        for name in sorted(self._services):  # the tasks' containers must be gone before their network can go
            with contextlib.suppress(CoursekitError):
                engine.wait_until(lambda n=name: not cl.containers.list(all=True, sparse=True, filters={
                    "label": f"com.docker.swarm.service.name={n}"}), timeout=30, what=f"{name}'s tasks to stop")
        for net in sorted(self._networks):
            with contextlib.suppress(Exception):
                cl.networks.get(net).remove()
                gone.append(f"network {net}")
        for tag in sorted(self._images):
            with contextlib.suppress(Exception):
                layers.remove_example(tag)
                deploy.forget(tag)
                gone.append(f"image {tag}")
        self._services.clear()
        self._networks.clear()
        self._images.clear()
        return gone
