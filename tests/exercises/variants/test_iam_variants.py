"""Variants of the IAM answers (exercises 12 q2 and 13 q1): right ones written another way pass, plausible
wrong ones fail, each graded by the solution's own public and hidden checks as the class grader does."""
from __future__ import annotations

import pytest

from .harness import assert_judged

# ---------------------------------------------------------------------------------------------- 12 q2
_12_Q2_END = """
    iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName=group, UserName=user)
    return iam.create_access_key(UserName=user)["AccessKey"]
"""


def _group_inline(statements: str) -> str:
    return f"""
def setup_analysts(iam, bucket, group, user):
    policy = {{"Version": "2012-10-17", "Statement": {statements}}}
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="read", PolicyDocument=json.dumps(policy))
""" + _12_Q2_END


Q12_2 = {
    "two statements, one per resource": (True, _group_inline(
        '[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},'
        ' {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]')),
    "a managed policy attached to the group": (True, """
def setup_analysts(iam, bucket, group, user):
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]}]}
    arn = iam.create_policy(PolicyName=f"{group}-read", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
""" + _12_Q2_END),
    "too permissive: delete as well": (False, _group_inline(
        '[{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:DeleteObject"],'
        ' "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]')),
    "too permissive: every bucket": (False, _group_inline(
        '[{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]')),
    "the policy on the user, not the group": (False, """
def setup_analysts(iam, bucket, group, user):
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
           "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="read", PolicyDocument=json.dumps(doc))
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(doc))
    iam.add_user_to_group(GroupName=group, UserName=user)
    return iam.create_access_key(UserName=user)["AccessKey"]
"""),
}


@pytest.mark.parametrize("name", Q12_2)
def test_12_q2(name):
    right, code = Q12_2[name]
    assert_judged(right, "12-iam", "q2", code)


# ---------------------------------------------------------------------------------------------- 13 q1
def _policy(statements: str) -> str:
    return f"""
def pipeline_role_policy(bucket, pipeline):
    return {{"Version": "2012-10-17", "Statement": {statements}}}
"""


OWN = '{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/{pipeline}/*"}'
Q13_1 = {
    "one statement per action": (True, _policy(
        '[{"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::{bucket}/{pipeline}/*"]},'
        ' {"Sid": "Write", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::" + bucket + "/" +'
        ' pipeline + "/*"}]')),
    "a JSON text, not a dict": (True, """
import json


def pipeline_role_policy(bucket, pipeline):
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject",
                       "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/{pipeline}/*"}]}, indent=2)
"""),
    "too permissive: and every EC2 action": (False, _policy(
        f'[{OWN}, {{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}}]')),
    "too permissive: and sending to any queue": (False, _policy(
        f'[{OWN}, {{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}}]')),
    "too permissive: every Get and Put on the objects": (False, _policy(
        '[{"Effect": "Allow", "Action": ["s3:Get*", "s3:Put*"], "Resource": f"arn:aws:s3:::{bucket}/{pipeline}/*"}]')),
    "too permissive: the whole bucket": (False, _policy(
        '[{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}]')),
}


@pytest.mark.parametrize("name", Q13_1)
def test_13_q1(name):
    right, code = Q13_1[name]
    assert_judged(right, "13-capstone", "q1", code)
