"""coursekit.cicd.pipeline run for real: a git repository in tmp -> CodeBuild unit tests -> a release check
-> a deployed container that answers HTTP; failures stop the pipeline, retry() resumes it; actions with
the same runOrder run side by side; a Swarm service rolled to a pushed digest; the pictures; nothing left
behind. Real engine, real moto (in-process). Lesson 08-ci-cd."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursekit import aws
from coursekit.docker import engine
from coursekit.cicd import pipeline
from coursekit.errors import CICDError
from coursekit.orchestrate import swarm

pytestmark = pytest.mark.usefixtures("real_engine")
HERE = Path(__file__).parents[1] / "fixtures" / "pipelines"
LESSON = "test-pipeline"


@pytest.fixture(scope="module")
def sb():
    sandbox = aws.sandbox()
    yield sandbox
    sandbox.stop()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Learner", "-c", "user.email=l@example.com",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(tmp_path: Path, fixture: str) -> Path:
    repo = tmp_path / fixture
    shutil.copytree(HERE / fixture, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first version")
    return repo


def definition(name: str, **values: str) -> str:
    text = (HERE / f"{name}.yml").read_text()
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    return text


def ours(pipe) -> list:
    return engine.client().containers.list(all=True, sparse=True,
                                           filters={"label": f"{pipeline.PIPELINE_LABEL}={pipe.name}"})


def statuses(ex) -> dict[str, str]:
    return {name: s.status for name, s in ex.stages.items()}


def stage_badge(html: str, stage: str) -> str:
    """The state the view draws for a stage (the badge right after its name)."""
    m = re.search(rf">{stage} <span style=\"background:[^\"]+\">(\w+)</span>", html)
    return m[1] if m else ""


@pytest.fixture
def release(sb, tmp_path):
    repo = make_repo(tmp_path, "app")
    pipe = pipeline.Pipeline(definition("release", repo=str(repo)), sandbox=sb, lesson=LESSON, projects={
        "release-checks": {"buildspec": "buildspec-release.yml", "env": {"RELEASE_VERSION": "2.0"}}})
    yield pipe, repo
    pipe.teardown()


def test_a_failing_test_stops_the_pipeline_and_retry_resumes_it(release, sb):
    pipe, repo = release
    lines: list[str] = []
    ex = pipe.run(progress=lines.append)
    # The release check fails: the project says 2.0 is being released, the code is 1.0. Deploy never runs.
    assert ex.status == "Failed"
    assert statuses(ex) == {"Source": "Succeeded", "Build": "Succeeded", "Test": "Failed", "Deploy": "Idle"}
    check = ex.action("Test", "ReleaseCheck")
    assert check.error.startswith("1 of 1 tests failed: test_the_code_is_the_version_being_released")
    assert ex.action("Build", "UnitTests").summary["tests"] == "2 of 2 tests passed"
    assert not ours(pipe)
    assert any("[Test/ReleaseCheck]" in line and "Entering phase BUILD" in line for line in lines)
    html = pipe.view().html()
    assert [stage_badge(html, s) for s in ex.stages] == ["Succeeded", "Succeeded", "Failed", "Idle"]

    # Fix the project (not the code) and retry: only the failed stage, then onwards to the deploy.
    pipe.projects["release-checks"].env["RELEASE_VERSION"] = "1.0"
    assert ex.retry(progress=None) is ex
    assert ex.status == "Succeeded" and set(statuses(ex).values()) == {"Succeeded"}
    runs = {name: len(a.attempts) for s in ex.stages.values() for name, a in s.actions.items()}
    assert runs == {"Checkout": 1, "UnitTests": 1, "ReleaseCheck": 2, "Run": 1}  # only the failed action again
    url = ex.action("Deploy", "Run").summary["url"]
    assert url.startswith("http://127.0.0.1:")
    assert urllib.request.urlopen(url, timeout=10).read().decode() == "hello, pipeline! (version 1.0)\n"
    with pytest.raises(CICDError, match="only a failed execution can be retried"):
        ex.retry()

    # Artifacts went through the artifact store, under <pipeline>/<artifact[:10]>/<id>, as zips.
    src = ex.artifacts["SourceOutput"]
    assert re.fullmatch(r"hello-release/SourceOutp/[A-Za-z0-9]{7}", src.key)
    assert src.revision == git(repo, "rev-parse", "HEAD")
    body = sb.client("s3").get_object(Bucket=src.bucket, Key=ex.artifacts["BuildOutput"].key)["Body"].read()
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == ["Dockerfile", "app.py"]
    # moto recorded the execution (and runs nothing itself).
    ids = [e["pipelineExecutionId"] for e in sb.client("codepipeline").list_pipeline_executions(
        pipelineName="hello-release")["pipelineExecutionSummaries"]]
    assert ex.id in ids

    fig = pipeline.timing_chart(ex)
    bars = [p for p in fig.axes[0].patches if p.get_width() > 0]
    assert len(bars) == 5 and sum(p.get_facecolor()[0] > 0.7 for p in bars) == 1  # one red bar: the first check
    assert pipe.teardown() and not ours(pipe)


def test_a_code_fix_needs_a_new_run_because_retry_reuses_the_artifacts(release):
    pipe, repo = release
    pipe.projects["release-checks"].env["RELEASE_VERSION"] = "1.0"
    app = repo / "app.py"
    good = app.read_text()
    app.write_text(good.replace('f"hello, {name}!', 'f"bye, {name}!'))
    git(repo, "commit", "-q", "-am", "a bug")
    ex = pipe.run(progress=None)
    assert statuses(ex) == {"Source": "Succeeded", "Build": "Failed", "Test": "Idle", "Deploy": "Idle"}
    assert "test_greeting_names_who_it_greets" in ex.action("Build", "UnitTests").error
    app.write_text(good)
    git(repo, "commit", "-q", "-am", "fix the greeting")
    ex.retry(progress=None)  # the same (buggy) source artifact: still failing
    assert ex.status == "Failed" and len(ex.action("Build", "UnitTests").attempts) == 2
    again = pipe.run(progress=None)  # a new execution fetches the new commit
    assert again.status == "Succeeded" and again.action("Source", "Checkout").summary["message"] == "fix the greeting"
    with pytest.raises(CICDError, match="a newer execution"):
        ex.retry()
    assert len(ours(pipe)) == 1


def test_actions_with_the_same_run_order_run_side_by_side(sb, tmp_path):
    s3 = sb.client("s3")
    s3.create_bucket(Bucket="source-bucket")
    s3.put_bucket_versioning(Bucket="source-bucket", VersioningConfiguration={"Status": "Enabled"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in (HERE / "app").iterdir():
            zf.write(f, f.name)
    version = s3.put_object(Bucket="source-bucket", Key="app.zip", Body=buf.getvalue())["VersionId"]
    package = "version: 0.2\nphases:\n  build:\n    commands:\n      - ls\n"  # an inline buildspec
    pipe = pipeline.Pipeline(HERE / "parallel.yml", sandbox=sb, lesson=LESSON, projects={
        "release": "buildspec-release.yml", "package": {"buildspec": package}})
    ex = pipe.run(progress=None)
    assert ex.status == "Succeeded", str(ex)
    assert ex.action("Source", "Fetch").summary["revision"] == version
    unit, rel, pkg = (ex.action("Checks", n).last for n in ("Unit", "Release", "Package"))
    assert pkg.start >= max(unit.end, rel.end)  # runOrder 2 waits for both of runOrder 1
    assert rel.summary["tests"] == "1 of 1 tests passed"  # RELEASE_VERSION came from EnvironmentVariables
    listing = pkg.log[pkg.log.index(next(x for x in pkg.log if x.endswith("Running command ls"))) + 1:][:3]
    assert listing[:2] == ["Dockerfile", "app.py"]  # Package got Unit's output artifact, not the whole source


@pytest.mark.slow
def test_swarm_deploy_pushes_and_rolls_the_service_to_the_new_digest(sb, tmp_path):
    repo = make_repo(tmp_path, "web")
    service = f"ck-web-{uuid.uuid4().hex[:6]}"
    pipe = pipeline.Pipeline(definition("swarm", repo=str(repo), service=service), sandbox=sb, lesson=LESSON)
    try:
        first = pipe.run(progress=None)
        assert first.status == "Succeeded", str(first)
        assert first.action("Deploy", "Roll").summary["answer"] == "web version 1"
        (repo / "index.html").write_text("web version 2\n")
        git(repo, "commit", "-q", "-am", "version 2")
        second = pipe.run(progress=None)
        assert second.status == "Succeeded", str(second)
        roll = second.action("Deploy", "Roll").summary
        assert roll["digest"] != first.action("Deploy", "Roll").summary["digest"]
        assert roll["state"] == "completed" and roll["answer"] == "web version 2"
        svc = engine.client().services.get(service)
        images = {t["Spec"]["ContainerSpec"]["Image"] for t in swarm.tasks(svc)}
        assert images == {roll["image"]} and len(swarm.tasks(svc)) == 2  # both replicas on the pushed digest
    finally:
        gone = pipe.teardown()
    assert f"service {service}" in gone
    assert not [s for s in engine.client().services.list() if s.name == service]


def test_the_view_renders_as_static_html_in_an_executed_notebook(tmp_path):
    """Executed without a browser (as nbval does), each cell keeps its last picture as plain HTML: the run's
    (a failed source) stays as it was, and the retry draws a new one that follows the resumed execution."""
    from nbclient import NotebookClient

    first = (f"import coursekit.aws, coursekit.cicd.pipeline as p\nsb = coursekit.aws.sandbox()\n"
             f"ex = p.Pipeline({str(HERE / 'one_source.yml')!r}, projects={{'never': {{'buildspec': "
             f"'version: 0.2\\nphases:\\n  build:\\n    commands: [ls]\\n'}}}}).run(progress=None)")
    fix = ("import io, zipfile\ns3 = sb.client('s3')\ns3.create_bucket(Bucket='no-such-bucket')\n"
           "s3.put_bucket_versioning(Bucket='no-such-bucket', VersioningConfiguration={'Status': 'Enabled'})\n"
           "buf = io.BytesIO()\nzipfile.ZipFile(buf, 'w').writestr('hello.txt', 'hi')\n"
           "s3.put_object(Bucket='no-such-bucket', Key='app.zip', Body=buf.getvalue())\n"
           "ex.retry(progress=None);")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(first), nbformat.v4.new_code_cell(fix)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    pictures = []
    for cell in nb.cells:
        html = [o["data"]["text/html"] for o in cell.outputs if o.get("output_type") == "display_data"]
        assert len(html) == 1, cell.outputs
        pictures.append((stage_badge(html[0], "Source"), stage_badge(html[0], "Next")))
    assert pictures == [("Failed", "Idle"), ("Succeeded", "Succeeded")]


def test_a_deploy_left_running_is_removed_when_python_exits(tmp_path):
    """No teardown(): the container goes with the session's clean-up, its image with the pipeline's."""
    repo = make_repo(tmp_path, "app")
    script = f"""
import sys, urllib.request
from coursekit import aws, pipeline
aws.sandbox()
pipe = pipeline.Pipeline({definition("release", repo=str(repo))!r}, lesson={LESSON!r}, projects={{
    "release-checks": {{"buildspec": "buildspec-release.yml", "env": {{"RELEASE_VERSION": "1.0"}}}}}})
ex = pipe.run(progress=None)
print(ex.status, sorted(pipe._images))
print(urllib.request.urlopen(ex.action("Deploy", "Run").summary["url"], timeout=10).read().decode().strip())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr
    status, answer = out.stdout.strip().splitlines()
    assert status.startswith("Succeeded ['coursekit-pipeline/hello-release-run:") and answer.startswith("hello")
    tag = status.split("'")[1]
    assert not engine.client().images.list(name=tag.split(":")[0])
    assert not engine.client().containers.list(all=True, sparse=True, filters={"name": "hello-release-run"})


def test_nothing_is_left_on_the_engine():
    leftovers = engine.client().containers.list(all=True, sparse=True, filters={"label": [
        f"{engine.SESSION}={engine.SESSION_ID}", "org.coursekit.role=pipeline-deploy"]})
    assert not leftovers
    assert not [t for i in engine.client().images.list() for t in i.tags
                if t.startswith("coursekit-pipeline/") or re.match(r"127\.0\.0\.1:\d+/web-swarm:", t)]
