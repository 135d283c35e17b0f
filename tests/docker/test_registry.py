"""The course registry: a real registry on 127.0.0.1, push/pull, its HTTP API, deletes and GC."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from coursekit.docker import engine, layers, registry
from coursekit.errors import DockerError, RegistryError

pytestmark = pytest.mark.usefixtures("real_engine")
BUSYBOX = "coursekit/busybox:v1"


@pytest.fixture(scope="module")
def reg():
    r = registry.start(lesson="test-registry")
    yield r
    r.stop()


@pytest.fixture
def app_image():
    """A small image of our own on top of busybox (busybox's layers + one)."""
    tag = f"coursekit-scratch/test-registry:{uuid.uuid4().hex[:8]}"
    img = layers.build_example(f"FROM {BUSYBOX}\nRUN echo {uuid.uuid4().hex} > /release.txt\n", tag)
    yield img
    layers.remove_example(tag)


def test_registry_answers_on_loopback_only(reg):
    status, headers, _ = reg.request("GET", "/v2/")
    assert status == 200 and headers.get("docker-distribution-api-version") == "registry/2.0"
    reg.container.reload()
    ips = {b["HostIp"] for b in reg.container.attrs["NetworkSettings"]["Ports"]["5000/tcp"]}
    assert ips == {"127.0.0.1"}
    assert registry.start() is not reg and registry.start().container.id == reg.container.id  # reused


def test_push_then_second_push_uploads_only_new_layers(reg, app_image):
    repo = f"base-{uuid.uuid4().hex[:6]}"
    first = reg.push(BUSYBOX, repo, "v1")
    assert first.pushed and not first.existed and first.digest.startswith("sha256:")
    # the app image shares busybox's layers: pushed to a repo *in the same registry*, only its own layer goes up
    second = reg.push(app_image, f"app-{uuid.uuid4().hex[:6]}", "1.0")
    assert len(second.pushed) == 1, second
    assert len(second.existed) == len(first.pushed), second


def test_catalog_tags_manifest_and_pull_by_digest(reg, app_image):
    repo = f"app-{uuid.uuid4().hex[:6]}"
    rep = reg.push(app_image, repo, "1.0")
    assert repo in reg.catalog()
    assert reg.tags(repo) == ["1.0"]
    digest, manifest = reg.manifest(repo, "1.0")
    assert digest == rep.digest
    diff_count = len(app_image.attrs["RootFS"]["Layers"])
    assert len(manifest["layers"]) == diff_count
    # delete the local copy, pull it back by digest: same image id
    ref = reg.reference(repo, "1.0")
    engine.client().images.remove(ref)
    pulled = reg.pull(repo, digest)
    assert pulled.id == app_image.id
    engine.client().images.remove(f"{reg.host}/{repo}@{digest}")


def test_retag_without_pushing_then_delete_and_garbage_collect(reg, app_image):
    repo = f"app-{uuid.uuid4().hex[:6]}"
    rep = reg.push(app_image, repo, "1.0")
    digest, media_type, raw = reg.manifest_raw(repo, "1.0")
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()  # a digest names the exact bytes
    assert reg.retag(repo, "1.0", "stable") == digest
    assert sorted(reg.tags(repo)) == ["1.0", "stable"]
    reg.delete(repo, digest)
    assert reg.tags(repo) == []
    with pytest.raises(RegistryError, match="no manifest"):
        reg.manifest(repo, "1.0")
    gc = reg.garbage_collect()
    assert gc["after"] < gc["before"], gc["output"][-500:]
    assert rep.digest == digest


def test_push_report_counts_the_bytes_sent_and_skipped(reg, app_image, tmp_path):
    repo = f"app-{uuid.uuid4().hex[:6]}"
    first = reg.push(app_image, repo, "1.0")
    _, manifest = reg.manifest(repo, "1.0")
    total = sum(layer["size"] for layer in manifest["layers"])
    assert first.pushed_bytes + first.existed_bytes == total > 0
    again = reg.push(app_image, repo, "also")  # a second tag for the same image sends no layer
    assert again.pushed == [] and again.pushed_bytes == 0 and again.existed_bytes == total
    assert again.digest == first.digest
    assert "0 layer(s) uploaded" in str(again)
    fig = registry.plot_pushes({"first": first, "again": again}, save=str(tmp_path / "pushes.png"))
    assert (tmp_path / "pushes.png").stat().st_size > 1000
    assert len(fig.axes[0].patches) == 4  # two stacked bars per push


def test_source_says_where_the_registry_program_came_from(reg):
    built = (reg.container.image.labels or {}).get("org.coursekit.source") == "recipe"
    assert ("Debian's docker-registry package" in reg.source) is built
    assert "registry:2" in reg.source


def test_delete_by_tag_is_refused_with_a_reason(reg):
    with pytest.raises(RegistryError, match="by digest, not by tag"):
        reg.delete("anything", "latest")


def _local_tags() -> set[str]:
    return {t for i in engine.client().api.images() for t in i.get("RepoTags") or []}


def _local_digests() -> set[str]:
    return {t for i in engine.client().api.images() for t in i.get("RepoDigests") or []}


def test_a_name_the_engine_would_refuse_is_explained_before_pushing(reg, app_image):
    with pytest.raises(DockerError, match="capital letters"):
        reg.push(app_image, "MyApp", "1.0")
    with pytest.raises(DockerError, match="tag"):
        reg.push(app_image, "myapp", "bad tag")


def test_a_tag_that_does_not_exist_is_explained(reg):
    with pytest.raises(RegistryError, match="no manifest nothing-here:9.9"):
        reg.manifest("nothing-here", "9.9")
    with pytest.raises(DockerError, match="not on this engine"):
        reg.pull("nothing-here", "9.9")


def test_stop_removes_container_volume_and_local_tags(reg, app_image):
    """Runs last: stops the module's registry (start() in one session returns the same one)."""
    r = registry.start(lesson="test-registry")
    assert r.container.id == reg.container.id
    ref = r.tag(app_image, "temp", "x")
    assert ref in _local_tags()
    pushed = r.push(app_image, "temp-digest", "y")
    engine.client().images.remove(r.reference("temp-digest", "y"))
    r.pull("temp-digest", pushed.digest)  # leaves a name HOST/temp-digest@sha256:... behind
    assert f"{r.host}/temp-digest@{pushed.digest}" in _local_digests()
    cid = r.container.id
    vols = [m["Name"] for m in r.container.attrs["Mounts"]]
    r.stop()
    assert not engine.client().containers.list(all=True, filters={"id": cid})
    assert not [v for v in engine.client().volumes.list() if v.name in vols]
    assert ref not in _local_tags()
    assert not [d for d in _local_digests() if d.startswith(f"{r.host}/")]



def test_a_registry_that_is_not_running_is_explained(reg):
    """After test_stop...: the module's registry is gone; asking it anything says so, with the fix."""
    with pytest.raises(RegistryError, match="does not answer") as err:
        reg.catalog()
    assert "registry.start()" in err.value.fix
