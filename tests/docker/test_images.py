"""coursekit.docker.images against the real engine: the course images exist, run, and are made offline.

The course images are left in place (they are a cache other tests use); only the
test-specific tags these tests create are removed.
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from coursekit.docker import engine, images, offline as imagebuild
from coursekit.errors import ImageProvisioningError

needs_engine = pytest.mark.engine
RUNS = {
    "coursekit/busybox:v1": (["echo", "hi"], "hi"),
    "coursekit/debian:bookworm": (["cat", "/etc/debian_version"], "12."),
    "coursekit/python:3.11": (["python", "-c", "print(1+1)"], "2"),
}


def _tag(what: str) -> str:
    return f"coursekit-test/{what}:{uuid.uuid4().hex[:10]}"


def _remove_tag(tag: str) -> None:
    import docker.errors as de

    try:
        engine.client().images.remove(tag)  # only our test tag (the image goes if nothing else names it)
    except de.ImageNotFound:
        pass


def _leftover_containers(marker: str) -> list[str]:
    found = []
    for c in engine.client().containers.list(all=True, ignore_removed=True):
        cmd = c.attrs.get("Config", {}).get("Cmd") or []
        if marker in " ".join(cmd if isinstance(cmd, list) else [cmd]):
            found.append(c.short_id)
    return found


# --------------------------------------------------------------------------- catalog and recipes


def test_catalog_names_upstreams_and_purposes():
    cat = images.catalog()
    assert list(cat)[:3] == ["coursekit/busybox:v1", "coursekit/debian:bookworm", "coursekit/python:3.11"]
    assert cat["coursekit/python:3.11"].upstream == "python:3.11-slim-bookworm"
    assert all(img.upstream and img.purpose for img in cat.values())


@pytest.mark.parametrize("name", list(images.catalog()))
def test_recipe_is_a_commented_dockerfile_without_syntax_line(name):
    path = images.recipe_path(name)
    assert path.name == "Dockerfile" and path.is_file()
    text = path.read_text()
    assert not re.search(r"^\s*#\s*syntax\s*=", text, re.I | re.M), "a # syntax= line pulls a frontend image"
    assert re.search(r"^FROM ", text, re.M)
    lines = text.splitlines()
    for i, line in enumerate(lines):  # every instruction is explained by the comment just above it
        starts_instruction = re.match(r"[A-Z]+\s", line) and (i == 0 or not lines[i - 1].rstrip().endswith("\\"))
        if starts_instruction:
            above = [x for x in lines[:i] if x.strip()]
            assert above and above[-1].startswith("#"), f"{path}:{i + 1}: no comment explains {line!r}"


def test_dependencies_come_first():
    assert images.catalog()["coursekit/python:3.11"].requires == ["coursekit/debian:bookworm"]
    order = [img.name for img in images._in_order(["python"])]
    assert order == ["coursekit/debian:bookworm", "coursekit/python:3.11"]


@pytest.mark.engine
def test_unknown_image_name_is_explained():
    with pytest.raises(ImageProvisioningError) as err:
        images.ensure(["nginx"])
    assert "coursekit/busybox:v1" in err.value.fix


# --------------------------------------------------------------------------- apt mirror


def test_mirror_from_one_line_sources_list(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.test/debian-security "
        "bookworm-security main\n"
        "deb-src http://src.mirror.test/debian bookworm main\n"
        "deb http://mirror.test/debian/ bookworm main contrib  # main archive\n")
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://wrong.test/debian bookworm main\n")
    assert imagebuild.debian_mirror("bookworm", tmp_path) == "http://mirror.test/debian"
    sources = imagebuild.image_sources("bookworm", tmp_path)
    assert "URIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates" in sources
    assert "URIs: http://mirror.test/debian-security\nSuites: bookworm-security" in sources


def test_mirror_from_deb822_sources(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "a-vendor.sources").write_text(
        "Types: deb\nURIs: http://vendor.test/repo\nSuites: nodistro\nComponents: main\n")
    (d / "debian.sources").write_text(
        "Types: deb\n# comment inside a stanza\nURIs: http://mirror.test/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://disabled.test/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb deb-src\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    assert imagebuild.debian_mirror("bookworm", tmp_path) == "http://mirror.test/debian"


def test_mirror_of_this_machine_is_read_from_apt():
    mirror = imagebuild.debian_mirror("bookworm")
    assert mirror.startswith(("http://", "https://")) and "security" not in mirror


def test_no_mirror_configured_is_explained(tmp_path):
    with pytest.raises(ImageProvisioningError) as err:
        imagebuild.debian_mirror("bookworm", tmp_path)
    assert "no Debian mirror" in err.value.problem and "sources.list" in err.value.fix


@needs_engine
def test_building_debian_without_a_mirror_names_image_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_APT_ROOT", str(tmp_path / "apt"))
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    tag = _tag("debian")
    with pytest.raises(ImageProvisioningError) as err:
        images.build("coursekit/debian:bookworm", tag=tag, progress=lambda s: None)
    assert tag in err.value.problem and "mirror" in err.value.problem and err.value.fix
    assert images._inspect(engine.client(), tag) is None


# --------------------------------------------------------------------------- the real images


@pytest.fixture(scope="module")
def provisioned():
    lines: list[str] = []
    t0 = time.monotonic()
    reports = images.ensure(progress=lines.append)
    return reports, time.monotonic() - t0, lines


def test_ensure_makes_every_image(provisioned):
    reports, _, _ = provisioned
    assert [r.name for r in reports] == list(images.catalog())
    assert all(r.action in {"present", "pulled", "built"} and r.size > 0 for r in reports)
    have = images.present()
    assert set(have) == set(images.catalog())
    for name, info in have.items():
        assert info["current"] and info["source"] in {"recipe", "upstream"}
        labels = engine.client().api.inspect_image(name)["Config"]["Labels"]
        assert labels[engine.OWNER] == engine.OWNER_VALUE and labels[images.IMAGE_LABEL] == name
        assert labels[images.RECIPE_LABEL] == images.recipe_hash(name)


@pytest.mark.parametrize("name", list(RUNS))
def test_each_image_really_runs(provisioned, name):
    cmd, expected = RUNS[name]
    out = engine.run(name, cmd).decode()
    assert out.strip().startswith(expected)


def test_second_ensure_is_instant_and_all_present(provisioned):
    lines: list[str] = []
    t0 = time.monotonic()
    reports = images.ensure(progress=lines.append)
    took = time.monotonic() - t0
    assert took < 1.0, f"a no-op ensure took {took:.2f} s"
    assert [r.action for r in reports] == ["present"] * len(images.catalog())
    assert not any("registry" in x for x in lines), "no registry probe when nothing is missing"


def test_offline_recipe_build_under_a_test_tag(provisioned):
    tag = _tag("busybox")
    lines: list[str] = []
    try:
        rep = images.build("coursekit/busybox:v1", tag=tag, nocache=True, progress=lines.append)
        assert rep.action == "built" and rep.name == tag and rep.source == "recipe"
        assert any(re.search(r"build step 1/\d+: FROM scratch", x) for x in lines)
        labels = engine.client().api.inspect_image(tag)["Config"]["Labels"]
        assert labels[images.SOURCE_LABEL] == "recipe" and labels[images.SCRATCH_LABEL] == "1"
        assert engine.run(tag, ["sh", "-c", "echo built offline"]).decode().strip() == "built offline"
    finally:
        _remove_tag(tag)


def test_pull_failure_falls_back_to_the_recipe(provisioned, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    tag = _tag("fallback")
    img = images.Image(tag, "127.0.0.1:9/coursekit-test/nothing:1", str(images.RECIPES / "busybox"),
                       "test: a registry that refuses", prepare=("busybox-static",))
    lines: list[str] = []
    try:
        (rep,) = images.ensure([img], pull=True, progress=lines.append)
        assert rep.action == "built" and rep.source == "recipe"
        assert any("pulling 127.0.0.1:9/" in x and "building the recipe instead" in x for x in lines)
    finally:
        _remove_tag(tag)


def test_an_image_that_must_not_be_pulled_is_built_even_online(provisioned, tmp_path, monkeypatch):
    """The build image adds tools its upstream lacks: pulling the upstream would give the wrong image."""
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    tag = _tag("never-pulled")
    img = images.Image(tag, "127.0.0.1:9/coursekit-test/nothing:1", str(images.RECIPES / "busybox"),
                       "test: never pulled", prepare=("busybox-static",), pull=False)
    lines: list[str] = []
    try:
        (rep,) = images.ensure([img], pull=True, progress=lines.append)
        assert rep.action == "built" and rep.source == "recipe"
        assert not any("pulling" in x for x in lines), lines
    finally:
        _remove_tag(tag)


def test_force_rebuilds_from_scratch_and_drops_the_replaced_image(provisioned, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    tag = _tag("forced")
    img = images.Image(tag, "none", str(images.RECIPES / "busybox"), "test: force", prepare=("busybox-static",))
    cl = engine.client()
    try:
        first = images.ensure([img], pull=False, progress=lambda s: None)[-1]
        assert images.ensure([img], pull=False, progress=lambda s: None)[-1].action == "present"
        second = images.ensure([img], pull=False, force=True, progress=lambda s: None)[-1]
        assert second.action == "built" and second.id != first.id
        assert images._inspect(cl, first.id) is None, "the replaced image was left behind"
        assert images._inspect(cl, "coursekit/busybox:v1") is not None, "force touched only what was named"
    finally:
        _remove_tag(tag)


def test_failing_step_is_quoted_with_its_output(provisioned, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    recipe = tmp_path / "failing"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text(f"# test\nFROM coursekit/busybox:v1\n# fails\n"
                                       f"RUN echo {marker} is about to fail && exit 3\n")
    tag = _tag("failing")
    img = images.Image(tag, "none", str(recipe), "test: a recipe whose RUN fails")
    with pytest.raises(ImageProvisioningError) as err:
        images.ensure([img], pull=False, progress=lambda s: None)
    problem = err.value.problem
    assert tag in problem and f"RUN echo {marker} is about to fail && exit 3" in problem
    log = problem.split("its last lines:")[1]
    assert f"{marker} is about to fail" in log and "\x1b[" not in log and "intermediate container" not in log
    assert "non-zero code: 3" in problem and err.value.fix
    assert _leftover_containers(marker) == [], "the failed step's container was left behind"
    assert images._inspect(engine.client(), tag) is None


def test_recipe_with_requirements_gets_a_host_side_wheelhouse(provisioned, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "withwheels"
    recipe.mkdir()
    (recipe / "requirements.txt").write_text("markupsafe==2.1.5\n")
    (recipe / "Dockerfile").write_text(
        "# test\nFROM coursekit/python:3.11\n# the wheels coursekit downloaded on the host\nCOPY wheels /wheels\n"
        "# install from those wheels only, no package index\n"
        "RUN pip install --no-index --find-links /wheels markupsafe\n")
    tag = _tag("wheels")
    img = images.Image(tag, "none", str(recipe), "test: wheelhouse", python="3.11")
    try:
        rep = images.ensure([img], pull=False, progress=lambda s: None)[-1]
        assert rep.action == "built"
        wheels = list(Path(tmp_path / "cache" / "images").glob("*/wheels/*.whl"))
        assert wheels and any("cp311" in w.name and "manylinux" in w.name for w in wheels)
        out = engine.run(tag, ["python", "-c", "import markupsafe; print(markupsafe.escape('<b>'))"]).decode()
        assert out.strip() == "&lt;b&gt;"
        assert _leftover_containers("--find-links /wheels") == []
    finally:
        _remove_tag(tag)


def test_pull_path_from_a_local_registry(provisioned, tmp_path, monkeypatch):
    """Full mode, for real: a registry (Debian's docker-registry, in an image built offline) serves the upstream."""
    import json
    import urllib.request

    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "registry"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text(
        "# test\nFROM coursekit/debian:bookworm\n# Debian's registry server\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends docker-registry "
        "&& rm -rf /var/lib/apt/lists/*\n# no authentication (the package's config asks for a password)\n"
        "COPY config.yml /etc/docker/registry/config.yml\n# serve on port 5000\n"
        'CMD ["docker-registry", "serve", "/etc/docker/registry/config.yml"]\n')
    (recipe / "config.yml").write_text("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/reg\n"
                                       "http:\n  addr: :5000\n")
    reg_tag, course_tag, cl = _tag("registry"), _tag("pulled"), engine.client()
    upstream = None
    try:
        images.ensure([images.Image(reg_tag, "none", str(recipe), "test: a local registry")], pull=False,
                      progress=lambda s: None)
        with engine.container(reg_tag, ports={"5000/tcp": ("127.0.0.1", None)}) as reg:
            reg.reload()
            port = reg.ports["5000/tcp"][0]["HostPort"]

            def answers():
                try:
                    return urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).status == 200
                except OSError:
                    return False

            engine.wait_until(answers, timeout=20, what="the test registry")
            repo = f"127.0.0.1:{port}/coursekit-test/busybox"
            upstream = f"{repo}:1"
            cl.api.tag("coursekit/busybox:v1", repo, "1")
            pushed = list(cl.api.push(repo, "1", stream=True, decode=True))
            assert not [p for p in pushed if "error" in p], json.dumps(pushed)[-500:]
            _remove_tag(upstream)  # so the engine has to pull it
            img = images.Image(course_tag, upstream, str(images.RECIPES / "busybox"), "test: pulled",
                               prepare=("busybox-static",))
            lines: list[str] = []
            rep = images.ensure([img], pull=True, progress=lines.append)[-1]
        assert rep.action == "pulled" and rep.source == "upstream", lines
        assert any(f"pull {upstream}" in x for x in lines)
        labels = cl.api.inspect_image(course_tag)["Config"]["Labels"]
        assert labels[images.SOURCE_LABEL] == "upstream" and labels[engine.OWNER] == engine.OWNER_VALUE
        assert engine.run(course_tag, ["echo", "pulled"]).decode().strip() == "pulled"
        again = images.ensure([img], pull=True, progress=lambda s: None)[-1]
        assert again.action == "present"
    finally:
        for t in (course_tag, upstream, reg_tag):
            if t:
                _remove_tag(t)
