"""AWS for the course, always through moto and never real AWS.

``sb = coursekit.aws.sandbox()`` starts the sandbox (:mod:`.mock`); the rest of the
subpackage is what the AWS lessons use around it: the network guard (:mod:`.guard`),
AWS errors in the learner's terms (:mod:`.errors`), the relay that lets a build container
reach the sandbox (:mod:`.relay`), Amazon ECR's lifecycle rules (:mod:`.ecr`), IAM
policies read line by line (:mod:`.iam`), and the one table of the services the course uses
(:mod:`.services`).

Rule: imports :mod:`coursekit.errors` and :mod:`coursekit.ui`; boto3 and moto only inside
functions; only :mod:`.relay` may use the Docker engine (through :mod:`coursekit.docker`).
"""
from __future__ import annotations

from .mock import ADMIN_USER, DEFAULT_REGION, FAKE_CREDENTIALS, Sandbox, active, reset, sandbox, stop

__all__ = ["ADMIN_USER", "DEFAULT_REGION", "FAKE_CREDENTIALS", "Sandbox", "active", "reset", "sandbox", "stop"]
