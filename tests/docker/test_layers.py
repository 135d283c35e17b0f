"""coursekit.docker.layers against the real engine: history, docker save, whiteouts, shared layers, build cache.

Every image these tests build has a unique tag and the scratch label; the fixtures remove
them, and the last test checks that no image or container they made is left behind.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import uuid

import pytest

from coursekit.docker import engine, layers

pytestmark = pytest.mark.engine
BUSYBOX = "coursekit/busybox:v1"
SEEN_IDS: set[str] = set()  # every image id a build of ours printed: none may outlive the tests


def _record(line: str) -> None:
    m = re.match(r"\s*---> ([0-9a-f]{12})$", line)
    if m:
        SEEN_IDS.add(m[1])


def _all_image_ids() -> set[str]:
    return {i["Id"].split(":")[1][:12] for i in engine.client().api.images(all=True)}


@pytest.fixture(scope="module", autouse=True)
def _before():
    """Image ids present before this module ran (course images, other people's builds)."""
    return _all_image_ids()


@pytest.fixture
def build():
    """build(dockerfile, **kw) -> image with a unique scratch tag, removed at teardown."""
    tags = []

    def _build(dockerfile: str, **kwargs):
        tag = f"coursekit-scratch/test-layers:{uuid.uuid4().hex[:10]}"
        tags.append(tag)
        return layers.build_example(dockerfile, tag, progress=_record, **kwargs)

    yield _build
    for tag in tags:
        layers.remove_example(tag)


@pytest.fixture(scope="module")
def saved_busybox(tmp_path_factory):
    return layers.save(BUSYBOX, tmp_path_factory.mktemp("busybox"))


# --------------------------------------------------------------------------- history


def test_history_matches_docker_history_and_diff_ids():
    img = engine.client().images.get("coursekit/python:3.11")
    hist = layers.history(img)
    assert len(hist) == len(img.history())
    if shutil.which("docker"):
        cli = subprocess.run(["docker", "history", "-q", img.id], capture_output=True, text=True, check=True)
        assert len(cli.stdout.split()) == len(hist)
    assert [h.diff_id for h in hist if h.diff_id] == img.attrs["RootFS"]["Layers"]
    assert [h.index for h in hist if h.diff_id] == list(range(len(img.attrs["RootFS"]["Layers"])))
    assert all("#(nop)" not in h.created_by for h in hist)
    env = next(h for h in hist if h.created_by.startswith("ENV"))
    assert env.diff_id is None and env.index is None and env.size == 0
    assert any(h.created_by.startswith("RUN apt-get") and h.diff_id for h in hist)


def test_history_of_a_built_example(build):
    img = build(f"FROM {BUSYBOX}\nENV A=1\nRUN echo hi > /hi.txt\nCMD [\"cat\", \"/hi.txt\"]\n")
    hist = layers.history(img)
    mine = hist[-5:]  # ENV, RUN, CMD, then the two labels build_example adds
    assert [h.created_by.split()[0] for h in mine] == ["ENV", "RUN", "CMD", "LABEL", "LABEL"]
    assert [h.diff_id is not None for h in mine] == [False, True, False, False, False]
    assert mine[1].diff_id == img.attrs["RootFS"]["Layers"][-1]


# --------------------------------------------------------------------------- docker save


def test_save_busybox_verifies_every_layer(saved_busybox):
    s = saved_busybox
    img = engine.client().images.get(BUSYBOX)
    assert s.layout == "docker-archive"
    assert BUSYBOX in s.manifest["RepoTags"]
    assert [f"sha256:{layer.sha256}" for layer in s.layers] == img.attrs["RootFS"]["Layers"]
    assert s.verified and all(layer.verified and layer.note == "" for layer in s.layers)
    summary = s.summary
    assert summary["os"] == "linux" and summary["architecture"] == "amd64"
    assert summary["cmd"] == ["sh"] and summary["history"] == len(img.history())
    assert "[OK ]" in str(s) and "[BAD]" not in str(s)


def test_corrupted_layer_is_detected(saved_busybox, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(saved_busybox.folder, copy)
    victim = copy / saved_busybox.layers[0].path.relative_to(saved_busybox.folder)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte, inside busybox's binary
    victim.write_bytes(bytes(data))
    s = layers.load_saved(copy)
    assert not s.verified
    assert [layer.verified for layer in s.layers] == [False] + [True] * (len(s.layers) - 1)
    bad = s.layers[0]
    assert "MISMATCH" in bad.note and bad.diff_id[7:19] in bad.note and "corrupted" in bad.note
    assert "[BAD]" in str(s)
    assert saved_busybox.verified  # the original is untouched


def test_oci_layout_with_a_gzip_layer_is_read_and_verified(saved_busybox, tmp_path):
    """Newer engines save OCI layouts (index.json, blobs/sha256/...), layers possibly gzipped."""
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_blobs = [put(gzip.compress(lay.path.read_bytes()) if lay.index == 0 else lay.path.read_bytes())
                   for lay in saved_busybox.layers]
    manifest = {"schemaVersion": 2, "config": put(json.dumps(saved_busybox.config).encode()), "layers": layer_blobs}
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [put(json.dumps(manifest).encode())]}))
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    s = layers.load_saved(tmp_path)
    assert s.layout == "oci" and s.verified and len(s.layers) == len(saved_busybox.layers)
    assert [lay.sha256 for lay in s.layers] == [lay.sha256 for lay in saved_busybox.layers]
    assert layers.layer_summary(s)[0]["bytes"] == layers.layer_summary(saved_busybox)[0]["bytes"]


def test_a_folder_that_is_no_archive_is_explained(tmp_path):
    with pytest.raises(layers.DockerError, match="not a docker save archive"):
        layers.load_saved(tmp_path)


def test_layer_files_of_busybox(saved_busybox):
    first = layers.layer_files(saved_busybox, 0)
    assert [(c.kind, c.type) for c in first if c.type == "file"] == [("added", "file")]
    assert max(c.size for c in first) > 1_000_000  # the busybox binary
    rows = layers.layer_summary(saved_busybox)
    assert len(rows) == len(saved_busybox.layers)
    assert rows[0]["added"] == 1 and rows[0]["deleted"] == 0 and rows[0]["bytes"] > 1_000_000


# --------------------------------------------------------------------------- deleting does not shrink


def test_deleting_a_file_later_does_not_shrink_the_image(build, tmp_path):
    base = engine.client().images.get(BUSYBOX)
    img = build(layers.DELETE_DOCKERFILE + "RUN echo new > /etc/motd && rm /etc/group\n")
    assert img.attrs["Size"] >= base.attrs["Size"] + 5 * 2**20  # the 5 MB are still there
    s = layers.save(img, tmp_path / "saved")
    assert s.verified
    n = len(s.layers)
    made = layers.layer_files(s, n - 3)
    assert [(c.path, c.kind, c.size) for c in made] == [("big.bin", "added", 5 * 2**20)]
    rm = layers.layer_files(s, n - 2)
    assert [(c.path, c.kind, c.type) for c in rm] == [("big.bin", "deleted", "whiteout")]
    last = {c.path: c for c in layers.layer_files(s, n - 1)}
    assert last["etc/motd"].kind == "added" and last["etc/group"].kind == "deleted"
    assert last["etc"].kind == "changed"  # the directory existed in a lower layer
    rows = layers.layer_summary(s)
    assert rows[n - 2]["deleted"] == 1 and rows[n - 2]["bytes"] == 0
    assert rows[n - 3]["bytes"] == 5 * 2**20


def test_delete_demo_reports_size_and_whiteout():
    seen_before = set(t for i in engine.client().images.list() for t in i.tags)
    demo = layers.delete_demo(progress=_record)
    assert demo["grown_by"] >= 5 * 2**20 and demo["whiteouts"] == ["big.bin"] and demo["verified"]
    assert {t for i in engine.client().images.list() for t in i.tags if "delete-demo" in t} <= seen_before


# --------------------------------------------------------------------------- shared layers and bases


def test_images_from_the_same_base_share_its_layers(build):
    a = build(f"FROM {BUSYBOX}\nRUN echo a > /a\n")
    b = build(f"FROM {BUSYBOX}\nRUN echo b > /b\n")
    base_layers = engine.client().images.get(BUSYBOX).attrs["RootFS"]["Layers"]
    assert layers.shared_layers(a, b) == base_layers
    assert layers.shared_layers(a, a.tags[0]) == a.attrs["RootFS"]["Layers"]
    assert layers.base_image(a) == BUSYBOX and layers.base_image(b) == BUSYBOX
    assert layers.base_image("coursekit/python:3.11") == "coursekit/debian:bookworm"
    assert layers.base_image(BUSYBOX) is None  # built FROM scratch


# --------------------------------------------------------------------------- build cache


def test_build_cache_scenarios(_before):
    runs = {r.scenario: r for r in layers.time_builds(progress=_record)}
    assert list(runs) == ["cold", "cached", "late file", "early file"]
    # Steps: 1 FROM, 2 COPY requirements.txt, 3 RUN, 4 COPY app.py, 5 RUN, 6 CMD, 7-8 labels.
    assert runs["cold"].cached == [] and runs["cold"].rebuilt == list(range(2, 9))
    assert runs["cached"].cached == list(range(2, 9)) and runs["cached"].rebuilt == []
    assert runs["late file"].cached == [2, 3] and runs["late file"].rebuilt == list(range(4, 9))
    assert runs["early file"].cached == [] and runs["early file"].rebuilt == list(range(2, 9))
    assert runs["cached"].seconds < runs["late file"].seconds < runs["early file"].seconds
    assert runs["cached"].seconds < runs["cold"].seconds / 4
    for r in runs.values():
        print(r)
    assert not (_all_image_ids() - _before) & SEEN_IDS  # time_builds removed what it made


# --------------------------------------------------------------------------- failures and leftovers


def test_failing_build_names_the_step_and_shows_output(_before):
    tag = f"coursekit-scratch/test-layers:{uuid.uuid4().hex[:10]}"
    df = f"FROM {BUSYBOX}\nRUN echo step two ok > /ok\nRUN echo about to fail && ls /nonexistent-{tag[-6:]}\nCMD [\"sh\"]\n"
    with pytest.raises(layers.BuildFailed) as info:
        layers.build_example(df, tag, progress=_record)
    err = info.value
    assert err.step == 3 and err.instruction.startswith("RUN echo about to fail")
    assert "step 3" in err.problem and "RUN echo about to fail" in err.problem
    assert "about to fail" in err.output and "nonexistent" in err.output
    assert "returned a non-zero code" in err.problem and err.fix
    assert tag not in {t for i in engine.client().images.list() for t in i.tags}
    assert not (_all_image_ids() - _before) & SEEN_IDS  # step 2's image was removed too


def test_nothing_left_behind(_before):
    """Runs last in this module: no image or container our builds made still exists."""
    assert SEEN_IDS, "the tests above should have built something"
    assert not (_all_image_ids() - _before) & SEEN_IDS
    cl = engine.client()
    containers = cl.containers.list(all=True, ignore_removed=True)
    assert not [c.short_id for c in containers if c.attrs.get("Image", "").split(":")[-1][:12] in SEEN_IDS]
    assert not cl.images.list(filters={"reference": "coursekit-scratch/test-layers"})
