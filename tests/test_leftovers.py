"""Runs last (see conftest.py): after everything else, nothing of ours is left on the engine."""
from __future__ import annotations

import subprocess
import time

import pytest

from coursekit.docker import engine


def _ours():
    cl = engine.client()
    flt = engine.ours_filter()
    found = [f"container {c.name} ({c.status})" for c in cl.containers.list(all=True, filters=flt)]
    found += [f"network {n.name}" for n in cl.networks.list(filters=flt)]
    found += [f"volume {v.name}" for v in cl.volumes.list(filters=flt)]
    try:
        found += [f"service {s.name}" for s in cl.services.list(filters=flt)]
    except Exception:  # not a swarm manager: no services
        pass
    from coursekit.orchestrate import swarm
    if swarm.state() == "active" and swarm.is_ours():
        found.append("swarm mode, turned on by coursekit")
    found += [f"image tag {t}" for i in cl.api.images() for t in i.get("RepoTags") or []
              if t.startswith("127.0.0.1:")]  # pushed to a course registry, never untagged
    return found


@pytest.mark.engine
def test_nothing_of_ours_is_left_on_the_engine():
    # Killed notebook kernels are cleaned up by their reaper, a moment after they die.
    deadline = time.monotonic() + 20
    left = _ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _ours()
    assert not left, "left behind by the test suite:\n" + "\n".join(left)


def test_no_virtual_machine_left_running():
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    assert not out.strip(), f"QEMU processes still running:\n{out}"
