"""What each kind of pipeline action does when :mod:`coursekit.cicd.pipeline` runs it.

Every action gets its input artifacts as zips (downloaded from the pipeline's artifact store,
as CodePipeline's job workers do), writes a log line by line, and hands back its output
artifacts as zips; it fails by raising :class:`ActionFailed` with CodePipeline-style error
details. The providers:

* ``AWS/Source/S3``: the object ``S3Bucket``/``S3ObjectKey`` of the sandbox's S3, which must be
  a zip in a bucket with versioning on (as CodePipeline requires); the revision is the
  object's version id.
* ``Custom/Source/coursekit-Git`` (ours): the tip of ``BranchName`` (default: the checked-out
  branch) of the local git repository at ``RepositoryPath``, as ``git archive`` zips it: only
  what is committed, as with a push to CodeCommit. The revision is the commit id.
* ``AWS/Build|Test/CodeBuild``: the buildspec of the project ``ProjectName`` run for real by
  :func:`coursekit.cicd.build.runner.run` on the primary input; the build's artifact zip is the
  output artifact. ``EnvironmentVariables`` (CodePipeline's JSON list, ``PLAINTEXT`` only)
  override the project's variables. (The runner also leaves the zip where the buildspec names
  it, ``<project>.zip`` by default, in the artifact store's bucket.)
* ``Custom/Deploy/coursekit-Container`` and ``Custom/Deploy/coursekit-Swarm`` (ours): see
  :mod:`coursekit.cicd.pipeline.deploy`.

:mod:`coursekit.cicd.pipeline.providers` puts both tables together and runs an action.

Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CoursekitError
from .model import ActionDef



class ActionFailed(Exception):
    """An action failed; ``str()`` is the error details the execution records."""


@dataclass
class Project:
    """A CodeBuild project as the pipeline sees it: where its buildspec is and its variables.

    ``buildspec``: None (``buildspec.yml`` in the source), a path in the source, or the YAML text
    itself (an inline buildspec, as a project can hold). ``env``: the project's environment
    variables. Change them and :meth:`Execution.retry` uses the new settings.
    """

    buildspec: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300


@dataclass
class Context:
    """One run of one action."""

    pipeline: Any
    execution_id: str
    action: ActionDef
    inputs: dict[str, bytes]
    log: Callable[[str], None]
    outputs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (zip, revision)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        return self.action.configuration


def slug(text: str) -> str:
    """A name Docker accepts for images, containers and repositories."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "pipeline"


def unzip(data: bytes, dest: Path) -> list[str]:
    """Extract a zip (file modes kept); returns the names."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise ActionFailed(f"the artifact holds a path outside its folder: {info.filename}")
            zf.extract(info, dest)
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                target.chmod(mode & 0o777)
        return [i.filename for i in zf.infolist() if not i.is_dir()]


def _git(repo: Path, *args: str) -> bytes:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60, check=False)
    if out.returncode:
        raise ActionFailed(f"git {' '.join(args)} failed: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout


def git_source(ctx: Context) -> None:
    repo = Path(ctx.config["RepositoryPath"]).expanduser()
    if not (repo / ".git").exists():
        raise ActionFailed(f"{repo} is not a git repository (it has no .git folder): git init, add and commit first")
    branch = ctx.config.get("BranchName") or _git(repo, "symbolic-ref", "--short", "HEAD").decode().strip()
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}").decode().strip()
    except ActionFailed:
        branches = ", ".join(_git(repo, "branch", "--format=%(refname:short)").decode().split())
        raise ActionFailed(f"the repository has no branch {branch!r} (its branches: "
                           f"{branches or 'none: commit something first'})") from None
    subject = _git(repo, "log", "-1", "--format=%s", commit).decode().strip()
    data = _git(repo, "archive", "--format=zip", commit)
    count = len(zipfile.ZipFile(io.BytesIO(data)).namelist())
    ctx.log(f"Fetched {branch} at {commit[:7]} ({subject!r}): {count} files, {len(data):,} bytes zipped")
    if _git(repo, "status", "--porcelain").strip():
        ctx.log("Note: the working folder has uncommitted changes; they are not in the artifact (commit them)")
    ctx.outputs[ctx.action.outputs[0]] = (data, commit)
    ctx.summary.update(revision=commit, message=subject, branch=branch)


def s3_source(ctx: Context) -> None:
    s3 = ctx.pipeline.sandbox.client("s3")
    bucket, key = ctx.config["S3Bucket"], ctx.config["S3ObjectKey"]
    try:
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        obj = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise ActionFailed(f"could not read s3://{bucket}/{key}: {exc}") from None
    if versioning != "Enabled":
        raise ActionFailed(f"the bucket {bucket} does not have versioning on, which an S3 source needs: "
                           f"s3.put_bucket_versioning(Bucket={bucket!r}, VersioningConfiguration={{'Status': "
                           "'Enabled'}})")
    data = obj["Body"].read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ActionFailed(f"s3://{bucket}/{key} is not a zip file: an S3 source object must be a .zip")
    version = obj.get("VersionId") or ""
    ctx.log(f"Fetched s3://{bucket}/{key} version {version}: {len(data):,} bytes")
    ctx.outputs[ctx.action.outputs[0]] = (data, version)
    ctx.summary.update(revision=version)


def _env_overrides(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        items = json.loads(text)
        assert isinstance(items, list)
        out = {}
        for item in items:
            if item.get("type", "PLAINTEXT") != "PLAINTEXT":
                raise ActionFailed(f"EnvironmentVariables: type {item['type']} needs Parameter Store or Secrets "
                                   "Manager, which the sandbox's builds cannot read: use PLAINTEXT")
            out[str(item["name"])] = str(item["value"])
        return out
    except (ValueError, AssertionError, KeyError, AttributeError, TypeError):
        raise ActionFailed('EnvironmentVariables must be a JSON list: [{"name": "X", "value": "1", "type": '
                           '"PLAINTEXT"}]') from None


def codebuild(ctx: Context) -> None:
    from ..build import runner as buildrunner

    a, name = ctx.action, ctx.config["ProjectName"]
    primary = ctx.config.get("PrimarySource") or a.inputs[0]
    if primary not in a.inputs:
        raise ActionFailed(f"PrimarySource {primary!r} is not one of the action's input artifacts "
                           f"({', '.join(a.inputs)})")
    if len(a.inputs) > 1 or len(a.outputs) > 1:
        raise ActionFailed("coursekit's CodeBuild takes one input and makes at most one output artifact "
                           "(secondary sources and artifacts are not supported here)")
    project = ctx.pipeline.projects.get(name) or Project()
    with tempfile.TemporaryDirectory(prefix="ck-pipeline-") as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        unzip(ctx.inputs[primary], src)
        spec = project.buildspec
        if spec is not None and "\n" not in spec:
            spec = src / spec
        try:
            result = buildrunner.run(src, spec, project=name, env_overrides=_env_overrides(
                ctx.config.get("EnvironmentVariables")), project_env=project.env, sandbox=ctx.pipeline.sandbox,
                artifact_bucket=ctx.pipeline.bucket, timeout=project.timeout, progress=ctx.log,
                lesson=ctx.pipeline.lesson)
        except CoursekitError as exc:  # (the temporary folder means nothing to the learner: name the artifact)
            why = f"{exc.problem}" + (f" ({exc.fix})" if exc.fix else "")
            raise ActionFailed("the build could not start: " + why.replace(str(src), f"input artifact {primary}"))
    ctx.summary.update(build_id=result.build_id, build=result, status=result.status)
    tests = [c for r in result.reports.values() for c in r.cases]
    failed = [f"{c.name} ({c.message.splitlines()[0][:120]})" if c.message else c.name
              for c in tests if c.status in ("FAILED", "ERROR")]
    if tests:
        ctx.summary["tests"] = f"{len(tests) - len(failed)} of {len(tests)} tests passed"
    if not result.succeeded:
        bad = next((p for p in result.phases if p.status not in ("SUCCEEDED", "SKIPPED")), None)
        cmd = next((c for c in (bad.commands if bad else []) if c.exit_code), None)
        why = (f"the {bad.name} phase {bad.status.lower()}" + (f": `{cmd.command}` exited with {cmd.exit_code}"
               if cmd else f" ({bad.message})")) if bad else f"the build {result.status.lower()}"
        tests_note = f"{len(failed)} of {len(tests)} tests failed: {'; '.join(failed)}. " if failed else ""
        raise ActionFailed(f"{tests_note}{why[0].upper()}{why[1:]} (build {result.build_id})")
    if a.outputs:
        if result.artifact is None or not result.artifact.data:
            raise ActionFailed(f"the action declares output artifact {a.outputs[0]!r} but the build made none: "
                               "give the buildspec an artifacts section (artifacts: files: ['**/*'])")
        ctx.outputs[a.outputs[0]] = (result.artifact.data, result.build_id)


#: What runs each source, build and test action type (the deploys are :data:`.deploy.PROVIDERS`).
PROVIDERS: dict[tuple[str, str, str], Callable[[Context], None]] = {
    ("Custom", "Source", "coursekit-Git"): git_source,
    ("AWS", "Source", "S3"): s3_source,
    ("AWS", "Build", "CodeBuild"): codebuild,
    ("AWS", "Test", "CodeBuild"): codebuild,
}
