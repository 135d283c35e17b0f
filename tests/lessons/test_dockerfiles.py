"""coursekit.lessons.dockerfiles against the real engine: contexts and .dockerignore, build args, the
cache after an edit, PID 1 and docker stop, health status, and that nothing is left behind."""
from __future__ import annotations

import pytest

from coursekit.lessons import dockerfiles
from coursekit.docker import engine, layers
from coursekit.dockerfile.linter import lint
from coursekit.errors import DockerError, LessonError

JUNK = {"app.py": "print('hi')\n", "notes.md": "private\n", "data/dump.sql": b"\0" * 300_000,
        ".git/HEAD": "ref: refs/heads/main\n"}
IGNORE = ".git\ndata/\n*.md\n"
WHEEL_NAME, WHEEL = dockerfiles.make_wheel("greet", "1.0", {"greet.py": "def hello(who):\n    return f'hi {who}'\n"})
DEPS = {"requirements.txt": "greet==1.0\n", f"wheels/{WHEEL_NAME}": WHEEL,
        "app.py": "import greet\nprint(greet.hello('tests'))\n"}
DEPS_FIRST = """FROM coursekit/python:3.11
WORKDIR /app
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir --no-index --find-links ./wheels -r requirements.txt
COPY app.py ./
CMD ["python3", "app.py"]
"""
CODE_FIRST = """FROM coursekit/python:3.11
WORKDIR /app
COPY . ./
RUN pip install --no-cache-dir --no-index --find-links ./wheels -r requirements.txt
CMD ["python3", "app.py"]
"""
SERVER = """import os, signal, sys, time
if os.environ.get("HANDLE_SIGTERM"):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _exists(image_id: str) -> bool:
    import docker.errors as de

    try:
        engine.client().images.get(image_id)
        return True
    except de.ImageNotFound:
        return False


@pytest.fixture(scope="module")
def made(real_engine):
    """Images built by a test: removed at the end, and then checked to be gone."""
    images = []
    yield images
    dockerfiles.remove(*reversed(images))
    left = [i.tags[0] for i in images if _exists(i.id)]
    assert not left, f"images left behind: {left}"


def _build(made, dockerfile, name, files=None, **kwargs):
    image = dockerfiles.build(dockerfile, dockerfiles.scratch_tag(name), files, **kwargs)
    made.append(image)
    return image


# --------------------------------------------------------------------------- no engine needed


def test_dockerignore_shrinks_the_context(tmp_path):
    dockerfiles.write_context(tmp_path, {"Dockerfile": "FROM coursekit/busybox:v1\n", **JUNK})
    everything = dockerfiles.context_size(tmp_path)
    dockerfiles.write_context(tmp_path, {".dockerignore": IGNORE})
    ignored = dockerfiles.context_size(tmp_path)
    assert everything.bytes > 300_000 > 20_000 > ignored.bytes
    assert ignored.files == [".dockerignore", "Dockerfile", "app.py"]
    assert sorted(ignored.ignored) == [".git/HEAD", "data/dump.sql", "notes.md"]
    assert dockerfiles.context_size(tmp_path, use_dockerignore=False).ignored == []


def test_write_context_refuses_paths_outside(tmp_path):
    with pytest.raises(LessonError):
        dockerfiles.write_context(tmp_path / "ctx", {"../escape.txt": "x"})
    assert not (tmp_path / "escape.txt").exists()


def test_wheel_is_a_valid_zip_with_a_record():
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(WHEEL)) as zf:
        names = zf.namelist()
        record = zf.read("greet-1.0.dist-info/RECORD").decode()
    assert "greet.py" in names and "greet-1.0.dist-info/METADATA" in names
    assert all(line.split(",")[0] in names for line in record.splitlines())


def test_exercise_material_is_consistent():
    findings = {f.rule for f in lint(dockerfiles.BROKEN_DOCKERFILE).findings}
    assert findings == {"CK301", "CK302", "CK403", "CK404", "CK205", "CK501"}
    assert set(dockerfiles.exercise_files()) == {"app.py", "requirements.txt", f"wheels/{WHEEL_NAME}"}
    compile(dockerfiles.EXERCISE_APP, "app.py", "exec")


# --------------------------------------------------------------------------- builds


def test_dockerignored_files_are_not_in_the_image(made):
    df = 'FROM coursekit/busybox:v1\nWORKDIR /app\nCOPY . .\nCMD ["find", "/app", "-type", "f"]\n'
    image = _build(made, df, "ignore", {**JUNK, ".dockerignore": IGNORE})
    files = engine.run(image.tags[0], lesson="test").decode().split()
    assert sorted(files) == ["/app/.dockerignore", "/app/Dockerfile", "/app/app.py"]
    assert image.context.ignored and image.context.bytes < 20_000


def test_build_args_reach_the_build_and_its_history_but_not_the_container(made):
    df = ('FROM coursekit/busybox:v1\nARG VERSION=dev\nARG SECRET\nRUN echo "v=$VERSION" > /v.txt\n'
          'CMD ["sh", "-c", "cat /v.txt; echo secret=${SECRET:-unset}"]\n')
    image = _build(made, df, "args", buildargs={"VERSION": "1.2", "SECRET": "hunter2"})
    assert engine.run(image.tags[0], lesson="test").decode().split() == ["v=1.2", "secret=unset"]
    assert any("SECRET=hunter2" in step.created_by for step in layers.history(image))


def test_a_failing_step_names_itself_and_leaves_nothing(real_engine):
    tag = dockerfiles.scratch_tag("fails")
    df = "FROM coursekit/busybox:v1\nRUN echo step-two > /two\nRUN echo about to fail && false\n"
    with pytest.raises(layers.BuildFailed) as info:
        dockerfiles.build(df, tag)
    assert info.value.step == 3 and "false" in info.value.instruction
    assert "about to fail" in info.value.output
    assert not _exists(tag)


def test_multistage_remove_takes_the_build_stage_too(real_engine):
    df = ("FROM coursekit/busybox:v1 AS build\nRUN echo built-$RANDOM-$$ > /out.txt\n"
          "FROM coursekit/busybox:v1\nCOPY --from=build /out.txt /\nCMD [\"cat\", \"/out.txt\"]\n")
    image = dockerfiles.build(df, dockerfiles.scratch_tag("multi"), nocache=True)
    assert engine.run(image.tags[0], lesson="test").decode().startswith("built-")
    assert len(image.built_ids) >= 3  # the build stage's RUN plus the final stage's steps
    dockerfiles.remove(image)
    assert not [i for i in image.built_ids + [image.id] if _exists(i)]


def test_remove_refuses_images_that_are_not_examples(real_engine):
    with pytest.raises(LessonError):
        dockerfiles.remove("coursekit/busybox:v1")
    assert _exists("coursekit/busybox:v1")


def test_dependencies_first_keeps_the_install_cached(real_engine):
    def pip_cached(dockerfile):
        steps = dockerfiles.steps_after_edit(dockerfile, DEPS)
        return [s.cached for s in steps if "pip install" in s.instruction]

    assert pip_cached(DEPS_FIRST) == [True]
    assert pip_cached(CODE_FIRST) == [False]


def test_the_wheel_installs_offline(made):
    image = _build(made, DEPS_FIRST, "wheel", DEPS)
    assert engine.run(image.tags[0], lesson="test").decode().strip() == "hi tests"


# --------------------------------------------------------------------------- running containers


@pytest.fixture(scope="module")
def app(made):
    base = _build(made, 'FROM coursekit/python:3.11\nCOPY app.py /\nCMD ["python3", "/app.py"]\n', "pid1",
                  {"app.py": SERVER})
    shell = _build(made, f"FROM {base.tags[0]}\nCMD python3 /app.py\n", "pid1-shell")
    return base.tags[0], shell.tags[0]


def test_shell_form_puts_a_shell_at_pid_1(app):
    exec_form, shell_form = app
    with engine.container(shell_form, lesson="test") as c:
        dockerfiles.wait_for_log(c, "ready")
        procs = dockerfiles.processes(c)
        assert procs[0].pid == 1 and procs[0].command.startswith("/bin/sh -c")
        assert any(p.command == "python3 /app.py" for p in procs[1:])
    with engine.container(exec_form, lesson="test") as c:
        dockerfiles.wait_for_log(c, "ready")
        assert [(p.pid, p.command) for p in dockerfiles.processes(c)] == [(1, "python3 /app.py")]


def test_stop_kills_pid_1_that_ignores_sigterm_but_not_the_fixes(app):
    exec_form, shell_form = app
    handler = {"HANDLE_SIGTERM": "1"}
    stops = dockerfiles.time_stops({
        "shell": {"image": shell_form, "environment": handler},
        "exec": {"image": exec_form},
        "handler": {"image": exec_form, "environment": handler},
        "init": {"image": exec_form, "init": True},
        "sigint": {"image": exec_form, "stop_signal": "SIGINT"},
    }, ready="ready", timeout=1)
    codes = {s.label: s.exit_code for s in stops}
    assert codes["shell"] == 137 and codes["exec"] == 137  # waited out the grace period, then SIGKILL
    assert codes["handler"] == 0 and codes["init"] == 143 and codes["sigint"] != 137
    assert "killed" in str(stops[0]) and "exited by itself" in str(stops[2])


def test_wait_for_log_reports_a_container_that_exits(real_engine):
    with engine.container("coursekit/busybox:v1", ["sh", "-c", "echo oops; exit 3"], lesson="test") as c:
        with pytest.raises(DockerError, match=r"(?s)exited \(code 3\).*oops"):
            dockerfiles.wait_for_log(c, "never printed", timeout=10)


def test_health_goes_from_starting_to_healthy_or_unhealthy(made):
    site = ("FROM coursekit/busybox:v1\nRUN mkdir /www && echo up > /www/index.html\n"
            'CMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n'
            "HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD wget -q -O /dev/null "
            "http://127.0.0.1:8000/{} || exit 1\n")
    good, bad = _build(made, site.format("index.html"), "hc-good"), _build(made, site.format("nope"), "hc-bad")
    with engine.container(good.tags[0], lesson="test") as g, engine.container(bad.tags[0], lesson="test") as b:
        timeline = dockerfiles.health_timeline({"good": g, "bad": b}, timeout=30)
    seen = {label: [status for _, l2, status in timeline if l2 == label] for label in ("good", "bad")}
    assert seen == {"good": ["starting", "healthy"], "bad": ["starting", "unhealthy"]}
