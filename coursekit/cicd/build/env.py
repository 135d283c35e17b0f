"""Who a build is and what it sees: its CodeBuild ids and its environment variables.

Each build of :func:`coursekit.cicd.build.runner.run` is also recorded in the AWS sandbox's
CodeBuild (moto): the project is created once (``create_project``: its source, the
buildspec's text, the image, the project's variables) and every build is started there
(``start_build``), which gives the build its id and ARN. moto runs nothing: its record of
the build says ``SUCCEEDED`` whatever really happened, and its ``buildNumber`` is random, so
``CODEBUILD_BUILD_NUMBER`` is the number of builds the sandbox holds for the project. Without
a sandbox, ids are made up the same way and numbers are counted in this process.

:func:`environment` gives the container's variables, in CodeBuild's order of precedence:
the variables CodeBuild provides, then the buildspec's ``env.variables``, then the project's
variables, then the start-build overrides (the later wins). Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import getpass
import time
import uuid
from typing import Any

ACCOUNT = "123456789012"  # moto's default account, for ARNs when there is no sandbox to ask
ENDPOINT = "http://aws:4566"  # where the relay listens on the build network (coursekit.aws.relay)
_numbers: dict[str, int] = {}


def register(sandbox: Any, project: str, *, source: str, buildspec_text: str, image: str, bucket: str | None,
             project_env: dict[str, str]) -> tuple[str, str, int]:
    """``(build id, build ARN, build number)`` for a new build of ``project``."""
    if sandbox is None:
        _numbers[project] = _numbers.get(project, 0) + 1
        build_id = f"{project}:{uuid.uuid4()}"
        return build_id, f"arn:aws:codebuild:us-east-1:{ACCOUNT}:build/{build_id}", _numbers[project]
    cb = sandbox.client("codebuild")
    if not cb.batch_get_projects(names=[project]).get("projects"):
        account = sandbox.client("sts").get_caller_identity()["Account"]
        cb.create_project(
            name=project, serviceRole=f"arn:aws:iam::{account}:role/coursekit-codebuild",
            source={"type": "NO_SOURCE", "location": source, "buildspec": buildspec_text},
            artifacts={"type": "S3", "location": bucket} if bucket else {"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": image, "computeType": "BUILD_GENERAL1_SMALL",
                         "environmentVariables": [{"name": k, "value": str(v), "type": "PLAINTEXT"}
                                                  for k, v in project_env.items()]})
    build = cb.start_build(projectName=project)["build"]
    return build["id"], build["arn"], len(cb.list_builds_for_project(projectName=project)["ids"])


def environment(*, build_id: str, arn: str, number: int, image: str, src_dir: str, sandbox: Any, relay: bool,
                layers: tuple[dict[str, str], ...]) -> dict[str, str]:
    """The build container's variables; ``layers`` are the user's, lowest precedence first."""
    region = getattr(sandbox, "region", None) or "us-east-1"
    creds = getattr(sandbox, "credentials", None) or {}
    env = {k: v for k, v in creds.items() if v} or {"AWS_ACCESS_KEY_ID": "testing",
                                                    "AWS_SECRET_ACCESS_KEY": "testing"}
    env.update({
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true",
        "CODEBUILD_BUILD_ARN": arn, "CODEBUILD_BUILD_ID": build_id, "CODEBUILD_BUILD_IMAGE": image,
        "CODEBUILD_BUILD_NUMBER": str(number), "CODEBUILD_BUILD_SUCCEEDING": "1",
        "CODEBUILD_INITIATOR": _user(), "CODEBUILD_LOG_PATH": build_id.split(":", 1)[-1],
        "CODEBUILD_SRC_DIR": src_dir, "CODEBUILD_START_TIME": str(int(time.time() * 1000)), "HOME": "/root"})
    if relay:
        env["AWS_ENDPOINT_URL"] = ENDPOINT
    for layer in layers:
        env.update({k: str(v) for k, v in layer.items()})
    return env


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name (some containers): CodeBuild would name the IAM user
        return "coursekit"
