"""The one table of the AWS services the course uses, against what really uses them."""
from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

from coursekit.aws import services
from coursekit.aws.iam import action_for
from coursekit.docker.images import RECIPES

ROOT = Path(__file__).resolve().parents[2]
CLIENT = re.compile(r"""(?:client|resource)\(\s*["']([a-z0-9-]+)["']""")


def test_the_doctests_run():
    assert doctest.testmod(services).failed == 0


def _called_by_the_course() -> dict[str, set[str]]:
    """service -> the lessons whose notebooks (lesson or exercise) make a client for it."""
    found: dict[str, set[str]] = {}
    for nb in [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb")]:
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        for name in CLIENT.findall(code):
            found.setdefault(name, set()).add(nb.stem)
    return found


def test_every_service_a_notebook_calls_is_in_the_table_with_its_lessons():
    called = _called_by_the_course()
    assert set(called) <= set(services.SERVICES), f"add these to coursekit/aws/services.py: " \
                                                 f"{sorted(set(called) - set(services.SERVICES))}"
    for name, lessons in called.items():
        assert lessons <= set(services.SERVICES[name].lessons), (name, sorted(lessons))


def test_the_grading_image_installs_moto_with_exactly_the_tables_extras():
    text = (RECIPES / "grader" / "requirements.txt").read_text()
    line = next(line for line in text.splitlines() if line.startswith("moto["))
    extras = sorted(line.split("[", 1)[1].split("]", 1)[0].split(","))
    assert extras == services.moto_extras(), (
        f"coursekit/docker/recipes/grader/requirements.txt installs moto[{','.join(extras)}]; the course's services "
        f"need moto[{','.join(services.moto_extras())}]: change that line")


def test_an_operation_needs_the_iam_action_aws_documents():
    assert action_for("s3", "ListObjectsV2") == "s3:ListBucket"
    assert action_for("s3", "HeadObject") == "s3:GetObject"
    assert action_for("s3", "PutObject") == "s3:PutObject"
    assert action_for("ec2", "DescribeInstances") == "ec2:DescribeInstances"
