"""Read a pipeline definition in AWS CodePipeline's own shape, check it, and register it in moto.

``definition = coursekit.cicd.pipeline.definition.load("pipeline.yml")`` (a file, YAML or JSON text, or a
dict; either ``{"pipeline": {...}}`` as ``aws codepipeline get-pipeline`` prints it, or the
inner mapping) returns a :class:`PipelineDef`, after CodePipeline's structural rules
(:mod:`coursekit.cicd.pipeline.rules`) have passed; every mistake found is listed in one
:class:`PipelineError`, each with the stage and action it is about and what to write instead.
:mod:`coursekit.cicd.pipeline` runs what passes.

Where this differs from CodePipeline (deliberately):

* ``roleArn`` and ``artifactStore`` may be left out: coursekit fills in its own role
  (``coursekit-codepipeline``, created in the sandbox's IAM with a trust policy for
  ``codepipeline.amazonaws.com``) and bucket (``codepipeline-<region>-coursekit``).
  ``artifactStores`` (cross-region) is refused.
* Stage conditions (``beforeEntry``, ``onSuccess``, ``onFailure``), ``triggers``,
  ``variables`` and an action's ``namespace``/``region``/``roleArn``/``timeoutInMinutes`` are
  accepted (moto keeps them) but not acted on: each gives a warning in
  :attr:`PipelineDef.warnings`.
* The coursekit action types, owner ``Custom``, are defined by coursekit instead of with
  ``CreateCustomActionType``: ``coursekit-Git`` (a source: a local git repository),
  ``coursekit-Container`` and ``coursekit-Swarm`` (deploys). Their names say they are ours.
* Every problem is reported at once; CodePipeline stops at the first.

:func:`register` stores the definition in the sandbox's CodePipeline (moto), which checks
little (a role it can assume, two stages) and runs nothing. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import CICDError
from .model import ActionDef, PipelineDef, PipelineError, StageDef
from .rules import Checker

__all__ = ["ROLE_NAME", "ActionDef", "PipelineDef", "PipelineError", "StageDef", "default_bucket", "load", "register"]

ROLE_NAME = "coursekit-codepipeline"


def load(source: str | Path | dict) -> PipelineDef:
    """Read a definition (file, YAML/JSON text, or dict) and check it; raises :class:`PipelineError`."""
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        path = Path(text) if len(text) < 1024 and "\n" not in text and not text.lstrip().startswith("{") else None
        if path is not None and (path.suffix in (".yml", ".yaml", ".json") or path.is_file()):
            if not path.is_file():
                raise CICDError(f"there is no pipeline file {path}", "check the path (it is relative to the "
                                "notebook's folder), or pass the definition itself")
            text = path.read_text()
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CICDError(f"the pipeline definition is not valid YAML or JSON: {exc}",
                            "indent with spaces only, and quote values that contain ': '") from None
    if isinstance(data, dict) and isinstance(data.get("pipeline"), dict):
        data = data["pipeline"]
    if not isinstance(data, dict):
        kind = type(data).__name__
        problem = f"a pipeline definition is a mapping with name and stages, not {kind}"
        raise PipelineError([("not-a-mapping", "", problem, "start from `pipeline: {name: ..., stages: [...]}`")])
    return Checker(data).check()


def register(definition: PipelineDef, sandbox: Any) -> dict:
    """Create (or update) the pipeline in the sandbox's CodePipeline; returns its ``metadata``.

    moto stores the structure and records executions, but runs nothing (its executions say
    ``Succeeded`` at once). The role is created in the sandbox's IAM the first time.
    """
    iam, cp = sandbox.client("iam"), sandbox.client("codepipeline")
    try:
        role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "codepipeline.amazonaws.com"}}]}
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust),
                               Description="the role coursekit's pipelines name (nothing assumes it)")["Role"]
    doc = definition.document(role["Arn"], default_bucket(sandbox))
    names = {p["name"] for p in cp.list_pipelines().get("pipelines", [])}
    if definition.name in names:
        cp.update_pipeline(pipeline=doc)
    else:
        cp.create_pipeline(pipeline=doc)
    return cp.get_pipeline(name=definition.name)["metadata"]


def default_bucket(sandbox: Any) -> str:
    return f"codepipeline-{getattr(sandbox, 'region', 'us-east-1')}-coursekit"
