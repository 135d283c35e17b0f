"""What the grader tells a submission's sandbox, and what its kernel keeps of it (no engine needed)."""
from __future__ import annotations

from coursekit.orchestrate import swarm


def test_the_sandbox_is_told_how_services_are_reached_and_the_kernel_keeps_it(monkeypatch):
    """The gate runs no host-network helper for the sandbox; the grader passes its own finding on, and the worker
    hands it to the student's kernel (whose environment is otherwise cleaned)."""
    from coursekit.grading.protocol import PASSED_ENV
    from coursekit.grading.worker.hygiene import environment

    assert swarm.ENDPOINT_MODE_ENV in PASSED_ENV
    monkeypatch.setenv(swarm.ENDPOINT_MODE_ENV, "dnsrr")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-the-kernel")
    env = environment(engine=True)
    assert env[swarm.ENDPOINT_MODE_ENV] == "dnsrr" and "AWS_SECRET_ACCESS_KEY" not in env
    monkeypatch.setattr(swarm, "_networking", None)
    assert swarm.networking().endpoint_mode == "dnsrr"  # told, not asked of a helper container
