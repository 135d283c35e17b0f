"""coursekit.cicd.build.runner against the real engine and a real moto server: each test runs a buildspec from
tests/fixtures/buildspecs/runner/ on the sample project and checks one behaviour CodeBuild documents
(or one documented difference). Lesson 08-ci-cd."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from coursekit import aws
from coursekit.cicd.build import runner as buildrunner
from coursekit.docker import engine
from coursekit.cicd.build.spec import BuildspecError
from coursekit.errors import CICDError

pytestmark = pytest.mark.usefixtures("real_engine")

HERE = Path(__file__).parents[1] / "fixtures" / "buildspecs"
PROJECT = HERE / "project"
LESSON = "test-buildrunner"


@pytest.fixture(scope="module")
def sb():
    """A moto server the builds can reach (through the relay), with one bucket of the learner's."""
    sandbox = aws.sandbox(server=True)
    sandbox.client("s3").create_bucket(Bucket="learner-bucket")
    yield sandbox
    sandbox.stop()


def build(name: str, **kw):
    """Run runner/<name>.yml on the sample project; no AWS unless a sandbox is passed."""
    kw.setdefault("sandbox", False)
    kw.setdefault("progress", None)
    return buildrunner.run(PROJECT, HERE / "runner" / f"{name}.yml", lesson=LESSON, **kw)


def statuses(result) -> dict[str, str]:
    return {p.name: p.status for p in result.phases}


def zip_names(data: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_cd_and_export_carry_over_between_commands_and_phases():
    lines: list[str] = []
    r = build("persistence", progress=lines.append)
    src = r.env["CODEBUILD_SRC_DIR"]
    log = r.phase("build").log
    assert r.succeeded, r.log
    assert f"cwd={src}/app" in log                       # the install phase's cd
    assert "stage=installed greeting=hello" in log       # exported and plain variables
    assert "the app's main file" in log                  # the source folder was copied in
    # The log streamed to progress as it happened, in CodeBuild's words.
    assert lines == r.log.splitlines()
    assert lines.index(next(x for x in lines if x.endswith("Entering phase INSTALL"))) < lines.index(f"cwd={src}/app")


def test_a_failing_command_ends_its_phase_but_finally_runs():
    r = build("finally")
    b = r.phase("build")
    assert (r.status, b.status, b.exit_code) == ("FAILED", "FAILED", 1)
    assert [(c.command, c.exit_code, c.block) for c in b.commands] == [
        ("echo first command", 0, "commands"), ("false", 1, "commands"),
        ("echo finally runs", 0, "finally"), ("echo finally runs twice", 0, "finally")]
    assert "never printed" not in r.log and "finally runs twice" in b.log
    assert b.message == "COMMAND_EXECUTION_ERROR: Error while executing command: false. Reason: exit status 1"


def test_an_install_failure_skips_the_later_phases_and_the_upload():
    r = build("install_fails")
    assert statuses(r) == {"PROVISIONING": "SUCCEEDED", "DOWNLOAD_SOURCE": "SUCCEEDED", "INSTALL": "FAILED",
                           "PRE_BUILD": "SKIPPED", "BUILD": "SKIPPED", "POST_BUILD": "SKIPPED",
                           "UPLOAD_ARTIFACTS": "SKIPPED"}
    assert r.phase("install").exit_code == 7 and "install finally" in r.phase("install").log
    assert not re.search(r"^(PRE_BUILD|BUILD|POST_BUILD) RAN$", r.log, re.M)
    assert r.artifact is None and not r.succeeded


def test_a_build_failure_still_runs_post_build_and_uploads_the_artifact(sb):
    r = build("build_fails", sandbox=sb, project="failing-build")
    assert "during build succeeding=1" in r.phase("build").log
    assert "post_build succeeding=0" in r.phase("post_build").log
    assert statuses(r)["BUILD"] == "FAILED" and statuses(r)["POST_BUILD"] == "SUCCEEDED"
    assert statuses(r)["UPLOAD_ARTIFACTS"] == "SUCCEEDED" and r.status == "FAILED"
    obj = sb.client("s3").get_object(Bucket=buildrunner.DEFAULT_BUCKET, Key="failing-build.zip")
    data = obj["Body"].read()
    assert zip_names(data) == ["dist/app.txt"]
    assert zipfile.ZipFile(io.BytesIO(data)).read("dist/app.txt") == b"half-built\n"
    # moto's CodeBuild holds the project and the build, and (being a fake) says it succeeded.
    cb = sb.client("codebuild")
    assert cb.batch_get_projects(names=["failing-build"])["projects"][0]["name"] == "failing-build"
    assert cb.batch_get_builds(ids=[r.build_id])["builds"][0]["buildStatus"] == "SUCCEEDED"


def test_on_failure_continue_goes_on_and_abort_stops_the_build():
    r = build("on_failure_continue")
    assert statuses(r)["INSTALL"] == "FAILED" and statuses(r)["BUILD"] == "SUCCEEDED"
    assert "build ran, succeeding=0" in r.phase("build").log and r.status == "FAILED"
    r = build("on_failure_abort")
    assert statuses(r)["BUILD"] == "FAILED"
    assert statuses(r)["POST_BUILD"] == statuses(r)["UPLOAD_ARTIFACTS"] == "SKIPPED"
    assert "POST_BUILD RAN" not in r.log and r.artifact is None


def test_start_build_overrides_beat_project_variables_which_beat_the_buildspec():
    r = build("env", project_env={"FROM_PROJECT": "project", "FROM_START": "project"},
              env_overrides={"FROM_START": "start-build"})
    assert "FROM_SPEC=buildspec FROM_PROJECT=project FROM_START=start-build LITERAL=$HOME/x" in r.log
    with pytest.raises(CICDError) as err:
        build("env", env_overrides={"CODEBUILD_BUILD_NUMBER": "9"})
    assert "CODEBUILD_BUILD_NUMBER" in err.value.problem and "reserved" in err.value.fix


def test_codebuild_s_own_variables_are_there():
    def seen(r) -> dict[str, str]:
        return dict(line.split("=", 1) for line in r.phase("build").log.splitlines() if re.match(r"[A-Z_]+=", line))

    first, second = build("reserved", project="reserved-vars"), build("reserved", project="reserved-vars")
    env = seen(second)
    assert env["CODEBUILD_BUILD_ID"] == second.build_id and second.build_id.startswith("reserved-vars:")
    assert env["CODEBUILD_BUILD_ARN"].endswith(f":build/{second.build_id}")
    assert int(env["CODEBUILD_BUILD_NUMBER"]) == second.number == first.number + 1
    assert env["CODEBUILD_BUILD_SUCCEEDING"] == "1" and env["CODEBUILD_BUILD_IMAGE"] == buildrunner.DEFAULT_IMAGE
    assert re.fullmatch(r"/codebuild/output/src\d+/src", env["CODEBUILD_SRC_DIR"])
    assert env["PWD"] == env["CODEBUILD_SRC_DIR"] and "hello.txt" in second.phase("build").log
    assert env["CODEBUILD_START_TIME"].isdigit() and env["CODEBUILD_INITIATOR"]
    assert (env["HOME"], env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("/root", "us-east-1", "us-east-1")


def test_exported_variables_come_back_as_post_build_left_them():
    r = build("exported")
    assert r.exported == {"IMAGE_TAG": f"app:{r.number}", "CHANGED": "in-post-build"}  # NEVER_SET was never set


def test_artifacts_are_zipped_with_codebuild_s_path_rules_into_the_sandbox(sb):
    r = build("artifacts_flat", sandbox=sb)
    key = f"releases/app-{r.number}.zip"                 # s3-prefix + the name, expanded by the build's shell
    assert (r.artifact.bucket, r.artifact.key, r.artifact.uploaded) == (buildrunner.DEFAULT_BUCKET, key, True)
    data = sb.client("s3").get_object(Bucket=buildrunner.DEFAULT_BUCKET, Key=key)["Body"].read()
    # base-directory out-* (both folders), discard-paths, exclude-paths **/*.tmp; loose.txt is outside.
    assert zip_names(data) == ["one.txt", "three.txt", "two.txt"] == r.artifact.names
    r = build("artifacts_tree", sandbox=sb, artifact_bucket="learner-bucket", project="tree")
    data = sb.client("s3").get_object(Bucket="learner-bucket", Key="tree.zip")["Body"].read()
    assert zip_names(data) == ["dist/a.js", "docs/img/logo.png", "docs/index.md"]  # dist/* is one level deep


def test_an_artifact_that_cannot_be_stored_fails_the_build(sb):
    r = build("artifacts_tree", sandbox=sb, artifact_bucket="no-such-bucket")
    assert statuses(r)["UPLOAD_ARTIFACTS"] == "FAILED" and r.status == "FAILED"
    assert "NoSuchBucket" in r.phase("upload_artifacts").message
    spec = "version: 0.2\nphases:\n  build:\n    commands: [echo hi]\nartifacts:\n  files: ['nowhere/*']\n"
    r = buildrunner.run(PROJECT, spec, sandbox=False, progress=None, lesson=LESSON)
    assert r.phase("upload_artifacts").message == "CLIENT_ERROR: no matching artifact paths found"
    assert r.status == "FAILED"


def test_junit_reports_become_codebuild_s_test_counts():
    r = build("junit", project="reports-demo")
    rep = r.reports["pytest-results"]
    assert rep.counts == {"SUCCEEDED": 2, "FAILED": 1, "SKIPPED": 1} and rep.total == 4
    assert (rep.status, rep.group, rep.files) == ("FAILED", "reports-demo-pytest-results", ["junit.xml"])
    assert [c.name for c in rep.cases if c.status == "FAILED"] == ["test_fails_on_purpose"]
    assert "arithmetic is broken" in next(c.message for c in rep.cases if c.status == "FAILED")
    assert r.phase("build").exit_code == 1 and r.status == "FAILED"  # pytest's exit code fails the phase


def test_a_malformed_buildspec_is_refused_before_anything_starts():
    before = engine.client().containers.list(all=True, filters=engine.ours_filter(engine.SESSION_ID))
    with pytest.raises(BuildspecError) as err:
        buildrunner.run(PROJECT, HERE / "malformed" / "unknown_phase.yml", sandbox=False, progress=None)
    assert err.value.key == "phases.deploy"
    assert engine.client().containers.list(all=True, filters=engine.ours_filter(engine.SESSION_ID)) == before


def test_a_build_past_its_timeout_is_stopped_and_reported():
    r = build("timeout", timeout=2)
    install = r.phase("install")
    assert (r.status, install.status) == ("TIMED_OUT", "TIMED_OUT")
    assert install.message == "BUILD_TIMED_OUT: Build timed out after 2 seconds"
    assert [(c.command, c.exit_code) for c in install.commands] == [("echo starting a long install", 0),
                                                                      ("sleep 60", None)]
    assert statuses(r)["BUILD"] == statuses(r)["UPLOAD_ARTIFACTS"] == "SKIPPED" and "BUILD RAN" not in r.log
    left = engine.client().containers.list(all=True, filters={"label": f"org.coursekit.build={r.build_id}"})
    assert left == []


def test_build_commands_reach_the_sandbox_and_nothing_else(sb):
    r = build("aws", sandbox=sb)
    log = r.phase("build").log
    assert r.succeeded, r.log
    assert "key=testing endpoint=http://aws:4566" in log                 # fake keys, moto's address
    assert "learner-bucket" in log                                       # `aws s3 ls` answered by the sandbox
    body = sb.client("s3").get_object(Bucket="learner-bucket", Key="from-the-build.txt")["Body"].read()
    assert body == (PROJECT / "hello.txt").read_bytes()
    assert "cannot resolve real AWS" in log and "no way out" in log      # no DNS, no route out


def test_a_command_that_exits_the_shell_fails_and_the_build_goes_on():
    r = build("exit")
    b, src = r.phase("build"), r.env["CODEBUILD_SRC_DIR"]
    assert (b.status, b.exit_code) == ("FAILED", 4) and "never printed" not in r.log
    assert f"finally in {src}/app KEPT=yes" in b.log                     # folder and exports survive
    assert f"post_build in {src}/app" in r.phase("post_build").log


def test_the_default_buildspec_runs_and_the_result_shows_as_a_table():
    r = buildrunner.run(PROJECT, sandbox=False, progress=None, lesson=LESSON)
    assert r.succeeded and r.project == "project" and "built from the default buildspec" in r.log
    html = r._repr_html_()
    assert html.count("<tr>") == 1 + len(r.phases) and "SUCCEEDED" in html and "UPLOAD_ARTIFACTS" in html
    assert "BUILD" in str(r) and r.phase("BUILD") is r.phase("build")


def test_bad_arguments_are_explained(tmp_path):
    with pytest.raises(CICDError) as err:
        buildrunner.run(tmp_path / "missing", sandbox=False)
    assert "does not exist" in err.value.problem
    with pytest.raises(CICDError) as err:
        buildrunner.run(PROJECT, timeout=0, sandbox=False)
    assert "timeout" in err.value.problem


def test_nothing_is_left_on_the_engine():
    flt = engine.ours_filter(engine.SESSION_ID)
    assert engine.client().containers.list(all=True, filters=flt) == []
    assert engine.client().networks.list(filters=flt) == []


def test_a_relative_buildspec_path_is_looked_up_in_the_source_like_codebuild(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "buildspec-ci.yml").write_text("version: 0.2\nphases:\n  build:\n    commands:\n      - echo from-ci-spec\n")
    monkeypatch.chdir(tmp_path)  # not the source folder: the file must still be found in the source
    result = buildrunner.run(src, "buildspec-ci.yml", sandbox=False, progress=None)
    assert result.succeeded and "from-ci-spec" in result.log
