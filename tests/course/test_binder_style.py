"""A Binder-style run: set up only from binder/, as a non-root user with no Docker, every notebook executes,
and lesson 01 boots its VM with the QEMU that binder/apt.txt installs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def apt_txt_packages() -> list[str]:
    """binder/apt.txt as repo2docker reads it: one name per line, '#' starts a comment."""
    lines = (ROOT / "binder" / "apt.txt").read_text().splitlines()
    return [name for line in lines if (name := line.partition("#")[0].strip())]


def test_apt_txt_lists_what_the_vm_lesson_needs():
    names = apt_txt_packages()
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", n)]
    assert not bad, f"not package names (repo2docker would refuse them): {bad}"
    assert {"qemu-system-x86", "busybox-static"} <= set(names), names
    assert not [n for n in names if n.startswith("linux-image")], \
        "an installed kernel is readable by root only on Ubuntu: postBuild fetches one instead"
    assert "coursekit vm-assets" in (ROOT / "binder" / "postBuild").read_text()


@pytest.mark.slow
def test_every_notebook_runs_when_set_up_from_binder_only():
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("apt-get"):
        msg = "needs root (to create the non-root user and install binder/apt.txt), setpriv and apt-get"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    # Not under pytest's tmp_path: that sits in a folder only root may enter, and the run is non-root.
    work = Path(tempfile.mkdtemp(prefix="coursekit-binder-"))
    work.chmod(0o755)
    try:
        # --worktree: the files as they are now (in CI, a fresh clone: the same thing)
        out = subprocess.run(["bash", str(ROOT / "tools" / "binder_style_run.sh"), "--worktree", str(work / "run")],
                             capture_output=True, text=True, timeout=1200)
        text = out.stdout + out.stderr
        tail = text[-3000:]
        assert out.returncode == 0, f"the Binder-style run failed:\n{tail}"
        notebooks = text.split("executing every notebook")[-1].split("[binder-style] executing notebooks/01")[0]
        assert " passed" in notebooks and "failed" not in notebooks, notebooks[-3000:]

        # postBuild, as the user, put the VM's kernel into the user's own home
        assert re.search(r"VM assets in the user's home: vmlinuz-\S+, owned by coursekit-binder", text), tail
        # ...and lesson 01, run through binder/start, really booted it
        booted = re.search(r"\[binder-style\] lesson 01 booted its VM: booted in [\d.]+ s using (\w+).*"
                           r"the guest's kernel : (\S+)", text)
        assert booted, tail
        kvm = Path("/dev/kvm")
        if not kvm.exists() or kvm.stat().st_mode & 0o006 != 0o006:   # the user may not open /dev/kvm
            assert booted.group(1) == "TCG", booted.group(0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
