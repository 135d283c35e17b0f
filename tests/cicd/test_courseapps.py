"""coursekit.cicd.apps: the sample apps of lessons 08-ci-cd and 13-capstone, and the helpers around them.

The apps are run for real: greeter's buildspecs with the course's build runner, its Dockerfile built and
its server asked over HTTP through a probe container; wordcount packaged the way exercise 08 asks and the
package run. Real engine, real git, nothing mocked.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import zipfile
from io import BytesIO

import pytest

from coursekit.cicd.build import runner as buildrunner, spec as buildspec
from coursekit.cicd import apps as courseapps
from coursekit.docker import engine, layers
from coursekit.orchestrate import swarm
from coursekit.errors import CICDError

LESSON = "test-courseapps"


# --------------------------------------------------------------------------- files and workspaces


def test_the_apps_and_a_clear_error_for_a_name_that_is_not_one():
    assert courseapps.names() == ["greeter", "wordcount"]
    with pytest.raises(CICDError, match="no sample app called 'greter'") as err:
        courseapps.path("greter")
    assert "greeter, wordcount" in err.value.fix
    with pytest.raises(CICDError, match="has no file 'buildspec.yaml'") as err:
        courseapps.read("greeter", "buildspec.yaml")
    assert "buildspec.yml" in err.value.fix


def test_every_buildspec_of_the_apps_is_one_codebuild_accepts():
    for name in ("buildspec.yml", "buildspec-smoke.yml"):
        spec = buildspec.parse(courseapps.read("greeter", name), name)
        assert spec.reports and not spec.warnings


def test_the_jenkinsfile_runs_the_same_commands_as_the_buildspec():
    spec = buildspec.parse(courseapps.read("greeter", "buildspec.yml"))
    jenkins = courseapps.read("greeter", "Jenkinsfile")
    for phase in ("install", "build"):
        for command in spec.phases[phase].commands:
            assert command in jenkins, f"{command!r} is in buildspec.yml but not in the Jenkinsfile"
    for name in spec.artifacts.files:
        assert name in jenkins


def test_a_workspace_is_a_git_repository_and_changes_are_commits(tmp_path):
    repo = courseapps.workspace("greeter", git_repo=True, into=tmp_path)
    assert repo.parent == tmp_path
    assert courseapps.git(repo, "log", "--format=%s") == "first version"
    assert courseapps.git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert courseapps.git(repo, "status", "--porcelain") == ""  # everything committed
    short = courseapps.change(repo, "app.py", 'VERSION = "1.0"', 'VERSION = "1.1"', commit="release 1.1")
    assert courseapps.git(repo, "log", "-1", "--format=%h %s") == f"{short} release 1.1"
    assert 'VERSION = "1.0"' in courseapps.read("greeter", "app.py")  # the app itself is untouched
    with pytest.raises(CICDError, match=r"contains 'VERSION = \"9\"' 0 times"):
        courseapps.change(repo, "app.py", 'VERSION = "9"', "x")
    courseapps.change(repo, "app.py", "return f\"Hello, {name}!", "return f\"Hi, {name}!")  # not committed
    assert courseapps.git(repo, "status", "--porcelain") == "M app.py"


def test_version_reads_a_greeters_answer():
    assert courseapps.version("Hello, Ana! (greeter 1.1)\nserved by abc") == "1.1"
    assert courseapps.version(None) is None and courseapps.version("<html>") is None


def test_compare_puts_two_files_side_by_side_escaped():
    html = courseapps.compare("greeter", "buildspec.yml", "Jenkinsfile")._repr_html_()
    assert html.count("<pre") == 2 and "Jenkinsfile" in html and "&#x27;coursekit/build:1&#x27;" in html


# --------------------------------------------------------------------------- run for real


@pytest.mark.usefixtures("real_engine")
def test_greeters_build_passes_and_a_broken_test_is_found(tmp_path):
    good = buildrunner.run(courseapps.workspace("greeter", into=tmp_path), sandbox=False, progress=None,
                           lesson=LESSON)
    summary = courseapps.summary(good)
    assert json.loads(json.dumps(summary)) == summary  # plain data: what exercise checks compare
    assert summary["status"] == "SUCCEEDED" and summary["failed"] is None
    assert summary["reports"]["unit-tests"] == {"status": "SUCCEEDED", "counts": {"SUCCEEDED": 3, "FAILED": 0},
                                                "total": 3}
    assert summary["artifact"]["files"] == ["Dockerfile", "app.py", "build-info.txt"]
    assert summary["exported"] == {"APP_VERSION": "1.0"}

    broken = courseapps.workspace("greeter", into=tmp_path)
    courseapps.change(broken, "app.py", 'return f"Hello, {name}!', 'return f"Hi, {name}!')
    bad = buildrunner.run(broken, sandbox=False, progress=None, lesson=LESSON)
    assert courseapps.first_failure(bad) == {
        "phase": "BUILD", "status": "FAILED", "command": "python -m pytest -q test_app.py --junitxml=reports/unit.xml",
        "exit_code": 1, "message": "COMMAND_EXECUTION_ERROR: Error while executing command: python -m pytest -q "
                                   "test_app.py --junitxml=reports/unit.xml. Reason: exit status 1"}
    assert bad.phase("post_build").status == "SUCCEEDED"  # CodeBuild runs post_build after a failed build
    with zipfile.ZipFile(BytesIO(bad.artifact.data)) as zf:
        assert zf.read("build-info.txt").decode().strip().endswith("CODEBUILD_BUILD_SUCCEEDING=0")


@pytest.mark.usefixtures("real_engine")
def test_the_smoke_test_starts_the_server_and_checks_the_release_version(tmp_path):
    src = courseapps.workspace("greeter", into=tmp_path)
    ok = buildrunner.run(src, src / "buildspec-smoke.yml", project_env={"RELEASE_VERSION": "1.0"}, sandbox=False,
                         progress=None, lesson=LESSON)
    assert ok.reports["smoke-tests"].counts == {"SUCCEEDED": 3, "FAILED": 0}
    wrong = buildrunner.run(src, src / "buildspec-smoke.yml", project_env={"RELEASE_VERSION": "1.1"}, sandbox=False,
                            progress=None, lesson=LESSON)
    failed = [c.name for c in wrong.reports["smoke-tests"].cases if c.status == "FAILED"]
    assert wrong.status == "FAILED" and failed == ["test_is_the_version_being_released"]


@pytest.mark.usefixtures("real_engine")
def test_wordcount_packages_into_a_program_that_runs(tmp_path):
    spec = """version: 0.2
phases:
  build:
    commands:
      - python -m pytest -q --junitxml=reports/unit.xml
      - mkdir -p dist
      - python -m zipapp src -m wordcount:main -o dist/wordcount.pyz
reports:
  unit-tests:
    files: [unit.xml]
    base-directory: reports
artifacts:
  files: [wordcount.pyz]
  base-directory: dist
"""
    result = buildrunner.run(courseapps.workspace("wordcount", into=tmp_path), spec, sandbox=False, progress=None,
                             lesson=LESSON)
    assert result.reports["unit-tests"].counts == {"SUCCEEDED": 4, "FAILED": 0}
    with zipfile.ZipFile(BytesIO(result.artifact.data)) as zf:
        assert zf.namelist() == ["wordcount.pyz"]
        (tmp_path / "wordcount.pyz").write_bytes(zf.read("wordcount.pyz"))
    out = subprocess.run([sys.executable, str(tmp_path / "wordcount.pyz"), "2"], input="the cat saw the hat the end",
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == ["3 the", "1 cat"]


@pytest.mark.usefixtures("real_engine")
def test_greeters_image_serves_and_a_listener_hears_who_answers():
    """The Dockerfile builds; the server answers through a probe; the Listener records its version, then
    records no answer once the server is gone."""
    tag = f"coursekit-scratch/greeter-test:{uuid.uuid4().hex[:8]}"
    name = f"greeter-test-{uuid.uuid4().hex[:6]}"
    image = layers.build_example(courseapps.read("greeter", "Dockerfile"), tag,
                                 {"app.py": courseapps.read("greeter", "app.py")})
    net = engine.network(f"ck-{name}", lesson=LESSON)
    app = probe = None
    try:
        app = engine.run(image.id, detach=True, name=name, network=net.name, init=True, lesson=LESSON)
        probe = swarm.Probe(net.name, lesson=LESSON)
        url = f"http://{name}:8000/?name=test"
        assert engine.wait_until(lambda: probe.get(url), timeout=20, what="the greeter").startswith(
            "Hello, test! (greeter 1.0)\nserved by ")
        assert probe.get(f"http://{name}:8000/health") == "ok\n"
        with courseapps.Listener(probe, url, every=0.1) as heard:
            engine.wait_until(lambda: len(heard.samples) >= 3, timeout=20, what="three answers")
            app.stop(timeout=5)
            engine.wait_until(lambda: heard.samples[-1][1] is None, timeout=20, what="no answer")
        versions = [v for _, v in heard.samples]
        assert versions[0] == "1.0" and versions[-1] is None
        assert set(heard.counts()) == {"1.0", "-"} and heard.start <= time.time()
    finally:
        for c in (probe, app):
            if c is not None:
                engine.remove_quietly(getattr(c, "container", c))
        net.remove()
        layers.remove_example(tag)
