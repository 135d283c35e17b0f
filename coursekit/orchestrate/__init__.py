"""Orchestration on the learner's own engine: Docker Swarm mode, and the same app as Kubernetes manifests.

:mod:`.swarm` (services, scaling, self-healing, rolling updates, on 127.0.0.1), :mod:`.swarmview`
(a live table of a service's tasks) and :mod:`.kube` (one description of a service for both
orchestrators; manifests validated against the Kubernetes schemas). Lesson ``07-orchestration``.

Rule: imports :mod:`coursekit.docker`, :mod:`coursekit.ui` and :mod:`coursekit.errors`.
"""
from __future__ import annotations

__all__ = ["kube", "swarm", "swarmview"]
