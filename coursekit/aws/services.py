"""The AWS services the course uses: the one table.

One row per service: boto3's name for it (``sb.client("s3")``), the moto extra that brings it,
the lessons that use it, and the boto3 operations whose IAM action has another name (listing a
bucket with ``ListObjectsV2`` needs ``s3:ListBucket``), which
:func:`coursekit.aws.iam.evaluation.action_for` reads. The grading image installs moto with
exactly these extras (``tests/aws/test_services.py`` keeps its requirements in step), so that a
submission runs in the sandbox as it did for the student. The guard needs no row: it refuses by
host, whatever the service.

>>> SERVICES["lambda"].extra, action_name("s3", "ListObjectsV2"), action_name("ec2", "RunInstances")
('awslambda', 'ListBucket', 'RunInstances')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Service:
    """An AWS service the course uses, as boto3 names it."""

    name: str                      # boto3's name: sb.client(name)
    extra: str                     # the moto extra that brings it: moto[extra]
    lessons: tuple[str, ...]       # the lessons (and their exercises) that call it
    actions: Mapping[str, str] = field(default_factory=dict)  # boto3 operation -> IAM action, where they differ


SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("s3", "s3", ("08-ci-cd", "09-cloud-computing", "10-s3", "12-iam", "13-capstone"),
            {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadObject": "GetObject",
             "HeadBucket": "ListBucket", "ListBuckets": "ListAllMyBuckets", "ListObjectVersions": "ListBucketVersions"}),
    Service("ec2", "ec2", ("09-cloud-computing", "11-ec2")),
    Service("iam", "iam", ("09-cloud-computing", "12-iam", "13-capstone")),
    Service("sts", "sts", ("09-cloud-computing", "12-iam", "13-capstone")),
    Service("ssm", "ssm", ("11-ec2",)),
    Service("ecr", "ecr", ("06-registries",)),
    Service("codebuild", "codebuild", ("08-ci-cd",)),
    Service("codepipeline", "codepipeline", ("08-ci-cd", "13-capstone")),
    Service("lambda", "awslambda", ("09-cloud-computing",)),
    Service("budgets", "budgets", ("09-cloud-computing",)),
    Service("rekognition", "rekognition", ("09-cloud-computing",)),
)}


def action_name(service: str, operation: str) -> str:
    """The IAM action's name for a boto3 operation (most are the same: ``RunInstances``)."""
    known = SERVICES.get(service)
    return (known.actions.get(operation, operation) if known else operation)


def moto_extras() -> list[str]:
    """The moto extras the course needs, sorted: ``moto[awslambda,budgets,...]``."""
    return sorted({s.extra for s in SERVICES.values()})
