"""coursekit.cicd.pipeline.definition: CodePipeline's structural rules, each with the message a learner reads; the
definition registered in moto's CodePipeline; what a pipeline does without a Docker engine. No engine
is needed here (tests/cicd/test_pipeline.py runs pipelines for real). Lesson 08-ci-cd."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from coursekit import aws
from coursekit.docker import engine
from coursekit.cicd import pipeline
from coursekit.cicd.pipeline import definition as pipelinedef
from coursekit.errors import CICDError
from coursekit.cicd.pipeline.definition import PipelineError

HERE = Path(__file__).parents[1] / "fixtures" / "pipelines"
BAD = HERE / "malformed"


def test_a_pipeline_needs_the_sandbox():
    """(First in the file: before the module's sandbox starts.)"""
    assert aws.active() is None
    with pytest.raises(CICDError, match="needs the AWS sandbox") as info:
        pipeline.Pipeline(HERE / "release.yml")
    assert "coursekit.aws.sandbox()" in info.value.fix


@pytest.fixture(scope="module")
def sb():
    sandbox = aws.sandbox()
    yield sandbox
    sandbox.stop()


def problems(path: Path) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        pipelinedef.load(path)
    return info.value


@pytest.mark.parametrize("name, rule, fragments", [
    ("dangling_artifact", "dangling-artifact",
     ["stage 'Deploy', action 'Run'", "input artifact 'BuildOuput' is not produced by any action",
      "did you mean 'BuildOutput'"]),
    ("duplicate_names", "duplicate-stage", ["stage 'Build': two stages have this name"]),
    ("duplicate_names", "duplicate-action", ["two actions are named 'Compile'"]),
    ("first_stage_not_source", "first-stage-not-source", ["the first stage must hold at least one source action"]),
    ("first_stage_not_source", "non-source-in-first-stage", ["action 'Compile'", "source actions only"]),
    ("one_stage", "too-few-stages", ["at least two stages, this one has 1"]),
    ("wrong_artifact_count", "artifact-count", ["action 'Fetch'",
                                                "S3 (Source) takes 1 output artifact, this action has 0"]),
    ("wrong_artifact_count", "artifact-count", ["action 'Compile'",
                                                "CodeBuild (Build) takes 1 to 5 input artifacts, this action has 0"]),
    ("unknown_provider", "unknown-provider", ["action 'Roll'", "no Deploy provider 'Swarm' of owner AWS",
                                              "provider 'coursekit-Swarm'"]),
    ("unknown_provider", "unknown-provider", ["action 'Roll2'", "'coursekit-Swam'", "did you mean",
                                              "custom action type must be created first"]),
    ("unknown_provider", "unknown-provider", ["action 'Build'", "CodeBuild is a provider of Build actions",
                                              "not of Deploy actions"]),
    ("source_not_first", "source-not-first", ["action 'Fetch2'", "only the first stage may hold source actions"]),
    ("artifact_order", "duplicate-output", [
        "output artifact 'SourceOutput' is also produced by stage 'Source', action 'Fetch'"]),
    ("artifact_order", "input-not-ready", ["action 'Check'", (
        "'BuildOutput' is produced by stage 'Build', action 'Compile', which runs at the same time (same runOrder)")]),
    ("typos", "version-not-text", ["version must be text, not 1"]),
    ("typos", "bad-run-order", ["runOrder 0 is not a whole number from 1 to 999"]),
    ("typos", "bad-artifacts", ["inputArtifacts lists 'SourceOutput' as plain text"]),
    ("typos", "unknown-configuration", ["no configuration 'Project' (did you mean 'ProjectName'?)"]),
    ("typos", "missing-configuration", ["CodeBuild needs configuration ProjectName"]),
])
def test_each_structural_rule_names_the_problem(name, rule, fragments):
    err = problems(BAD / f"{name}.yml")
    assert rule in err.rules, str(err)
    matching = [f"{where}: {msg}" for r, where, msg, _ in err.problems if r == rule]
    assert any(all(f in m for f in fragments) for m in matching), matching
    assert err.fix  # and says what to do
    assert str(err).startswith("the pipeline definition is not valid")


def test_every_problem_is_reported_at_once_with_its_fix():
    err = problems(BAD / "typos.yml")
    assert len(err.problems) == len(err.rules) >= 5
    assert "quote it: version: '1'" in err.fix and "inputArtifacts: [{name: SourceOutput}]" in err.fix


def test_valid_definitions_load_in_codepipelines_shapes():
    d = pipelinedef.load(HERE / "release.yml")
    assert [s.name for s in d.stages] == ["Source", "Build", "Test", "Deploy"]
    build = d.stage("Build").actions[0]
    assert (build.owner, build.category, build.provider, build.inputs, build.outputs) == \
        ("AWS", "Build", "CodeBuild", ["SourceOutput"], ["BuildOutput"])
    checks = pipelinedef.load(HERE / "parallel.yml").stage("Checks")
    assert [[a.name for a in g] for g in checks.groups()] == [["Unit", "Release"], ["Package"]]
    # The same document as JSON, bare (without the "pipeline" wrapper), or as a dict, reads the same.
    raw = json.dumps(d.raw)
    assert [s.name for s in pipelinedef.load(raw).stages] == [s.name for s in d.stages]
    assert pipelinedef.load({"pipeline": d.raw}).actions() == d.actions()


def test_a_missing_file_and_broken_yaml_get_clear_messages():
    with pytest.raises(CICDError, match="there is no pipeline file"):
        pipelinedef.load("no/such/pipeline.yml")
    with pytest.raises(CICDError, match="not valid YAML"):
        pipelinedef.load("pipeline:\n  name: x\n\tstages: []\n")
    with pytest.raises(PipelineError, match="is a mapping with name and stages"):
        pipelinedef.load("- just\n- a list\n")


def test_the_pipeline_is_registered_in_moto_unchanged(sb):
    pipe = pipeline.Pipeline(HERE / "release.yml", sandbox=sb)
    cp = sb.client("codepipeline")
    stored = cp.get_pipeline(name="hello-release")["pipeline"]
    assert [s["name"] for s in stored["stages"]] == ["Source", "Build", "Test", "Deploy"]
    assert stored["stages"][3]["actions"][0]["actionTypeId"] == {
        "category": "Deploy", "owner": "Custom", "provider": "coursekit-Container", "version": "1"}
    assert stored["roleArn"].endswith(":role/coursekit-codepipeline")
    assert stored["artifactStore"] == {"type": "S3", "location": pipe.bucket}
    sb.client("s3").head_bucket(Bucket=pipe.bucket)  # the artifact store exists
    pipeline.Pipeline(HERE / "release.yml", sandbox=sb)  # again: an update, not an error
    assert cp.get_pipeline(name="hello-release")["pipeline"]["version"] == 2


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_an_s3_source_needs_a_versioned_bucket_and_a_zip(sb):
    s3 = sb.client("s3")
    s3.create_bucket(Bucket="source-bucket")
    s3.put_object(Bucket="source-bucket", Key="app.zip", Body=_zip({"a.txt": "a"}))
    pipe = pipeline.Pipeline(HERE / "parallel.yml", sandbox=sb)
    ex = pipe.run(progress=None)
    assert (ex.status, ex.stages["Source"].status, ex.stages["Checks"].status) == ("Failed", "Failed", "Idle")
    assert "does not have versioning on" in ex.action("Source", "Fetch").error
    s3.put_bucket_versioning(Bucket="source-bucket", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="source-bucket", Key="app.zip", Body=b"not a zip")
    assert "is not a zip file" in pipe.run(progress=None).action("Source", "Fetch").error


def test_without_an_engine_the_build_fails_with_the_reason(sb, monkeypatch):
    """As on Binder: the source is fetched (S3 is moto), the build cannot run, the deploy never starts."""
    s3 = sb.client("s3")
    s3.create_bucket(Bucket="nodocker-source")
    s3.put_bucket_versioning(Bucket="nodocker-source", VersioningConfiguration={"Status": "Enabled"})
    spec = "version: 0.2\nphases:\n  build:\n    commands: [true]\n"
    s3.put_object(Bucket="nodocker-source", Key="app.zip", Body=_zip({"buildspec.yml": spec}))
    doc = pipelinedef.load(HERE / "parallel.yml").raw
    doc = json.loads(json.dumps(doc).replace("source-bucket", "nodocker-source").replace("parallel-checks",
                                                                                            "no-docker"))
    monkeypatch.setenv("COURSEKIT_NO_ENGINE", "1")
    engine.reset()
    try:
        ex = pipeline.Pipeline(doc, sandbox=sb).run(progress=None)
    finally:
        monkeypatch.delenv("COURSEKIT_NO_ENGINE")
        engine.reset()
    assert ex.stages["Source"].status == "Succeeded" and ex.stages["Checks"].status == "Failed"
    assert "runs in no-engine mode" in ex.action("Checks", "Unit").error
    assert ex.action("Checks", "Package").status == "Idle"  # runOrder 2 never started
