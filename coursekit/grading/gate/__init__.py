"""A Docker API endpoint for one submission, behind a policy: the gate.

While a submission is graded, the code in its sandbox reaches the engine only through its own
gate (:class:`Gate`): a unix socket bind-mounted into the sandbox (which still has no network),
served on the grading host, where every request is checked by the submission's policy
(:mod:`.policy`) in its own namespace (:mod:`.tenant`) before anything reaches the engine, and
HTTP is spoken by h11 on both sides (:mod:`.wire`).
"""
from __future__ import annotations

from .policy import Caps, Policy, Refused
from .server import CONTAINER_LIMITS, Gate
from .tenant import Tenant

#: What the gate serves beyond containers, images, builds, volumes, networks and published ports
#: (a question's ``needs``): a registry of the submission's own, and Swarm services (where the grading
#: engine is a swarm manager: the class grader makes it one for the questions that need it). Containers
#: that reach the AWS sandbox come next; a question needing them is graded "needs engine", as before.
SERVES: frozenset[str] = frozenset({"registry", "swarm", "aws"})

__all__ = ["CONTAINER_LIMITS", "SERVES", "Caps", "Gate", "Policy", "Refused", "Tenant"]
