"""Variants of exercises 09 (cloud economics) and 12 q1/q3 (IAM documents and roles)."""
from __future__ import annotations

from .harness import variant_tests

_READER = """
def reader_policy(bucket, prefix):
    return {{"Version": "2012-10-17", "Statement": {statements}}}
"""
_LIST = ('{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}", '
         '"Condition": {"StringLike": {"s3:prefix": f"{prefix}*"}}}')
_GET = '{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]}'

VARIANTS = {
    ("09-cloud-computing", "q1"): {
        "a closed form": (True, """
import math


def months_to_break_even(upfront, own_monthly, cloud_monthly, horizon=60):
    saving = cloud_monthly - own_monthly
    if saving <= 0:
        return None
    month = max(1, math.ceil(upfront / saving))
    return month if month <= horizon else None
"""),
        "strictly cheaper, not no more expensive": (False, """
def months_to_break_even(upfront, own_monthly, cloud_monthly, horizon=60):
    for month in range(1, horizon + 1):
        if upfront + own_monthly * month < cloud_monthly * month:
            return month
    return None
"""),
        "0 for never": (False, """
def months_to_break_even(upfront, own_monthly, cloud_monthly, horizon=60):
    for month in range(1, horizon + 1):
        if upfront + own_monthly * month <= cloud_monthly * month:
            return month
    return 0
"""),
    },
    ("09-cloud-computing", "q2"): {
        "a binary search": (True, """
import math


def smallest_fixed_capacity(demand, fraction=0.99):
    lo, hi = 0, math.ceil(max(demand))
    while lo < hi:
        mid = (lo + hi) // 2
        if cm.served_fraction(demand, cm.fixed_capacity(demand, mid)) >= fraction:
            hi = mid
        else:
            lo = mid + 1
    return lo
"""),
        "always the peak": (False, """
def smallest_fixed_capacity(demand, fraction=0.99):
    return max(demand)
"""),
        "one too many": (False, """
def smallest_fixed_capacity(demand, fraction=0.99):
    servers = 0
    while cm.served_fraction(demand, cm.fixed_capacity(demand, servers)) < fraction:
        servers += 1
    return servers + 1
"""),
    },
    ("12-iam", "q1"): {
        "the condition's value as a plain string, the resource as a list": (True, _READER.format(
            statements=f"[{_GET}, {_LIST}]")),
        "as JSON text": (True, """
import json


def reader_policy(bucket, prefix):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::" + bucket,
         "Condition": {"StringLike": {"s3:prefix": [prefix + "*"]}}},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::" + bucket + "/" + prefix + "*"}]})
"""),
        "listing the whole bucket": (False, _READER.format(
            statements=f'[{_GET}, {{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{{bucket}}"}}]')),
        "reading the whole bucket": (False, _READER.format(
            statements='[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}, '
                       + _LIST + "]")),
        "every Get": (False, _READER.format(
            statements='[{"Effect": "Allow", "Action": "s3:Get*", "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"}, '
                       + _LIST + "]")),
    },
    ("12-iam", "q3"): {
        "the low-level client with the keys": (True, """
def publish_as_role(session, role_arn, bucket, key, body):
    c = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="q3")["Credentials"]
    keys = dict(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                aws_session_token=c["SessionToken"], region_name=session.region_name)
    boto3.client("s3", **keys).put_object(Bucket=bucket, Key=key, Body=body)
    return boto3.client("sts", **keys).get_caller_identity()["Arn"]
"""),
        "writes as itself, not as the role": (False, """
def publish_as_role(session, role_arn, bucket, key, body):
    session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return session.client("sts").get_caller_identity()["Arn"]
"""),
        "the role's ARN, not the session's": (False, """
def publish_as_role(session, role_arn, bucket, key, body):
    c = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="q3")["Credentials"]
    s = boto3.Session(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"], region_name=session.region_name)
    s.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return role_arn
"""),
    },
}
test_variant = variant_tests(VARIANTS)
