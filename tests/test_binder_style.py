"""A Binder-style run: set up only from binder/, as a non-root user with no Docker, every notebook executes."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_runs_when_set_up_from_binder_only():
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("git"):
        msg = "needs root (to create the non-root user), setpriv and git"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    # Not under pytest's tmp_path: that sits in a folder only root may enter, and the run is non-root.
    work = Path(tempfile.mkdtemp(prefix="coursekit-binder-"))
    work.chmod(0o755)
    try:
        out = subprocess.run(["bash", str(ROOT / "tools" / "binder_style_run.sh"), str(work / "run")],
                             capture_output=True, text=True, timeout=1200)
        tail = (out.stdout + out.stderr)[-3000:]
        assert out.returncode == 0, f"the Binder-style run failed:\n{tail}"
        assert " passed" in tail and "failed" not in tail.split("executing every notebook")[-1], tail
    finally:
        shutil.rmtree(work, ignore_errors=True)
