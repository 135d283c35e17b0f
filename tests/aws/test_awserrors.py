"""AWS errors explained in the learner's terms, against real moto answers (in-process and server).

Every explanation below comes from an error moto really returned, except where moto never
sends the code (``IncorrectInstanceState``): there the test first proves that moto does not
send it, then builds the ``ClientError`` with the shape AWS documents.
"""
from __future__ import annotations

import doctest
import json
import pickle

import boto3
import pytest
from botocore.exceptions import ClientError

from coursekit import aws
from coursekit.aws import errors as awserrors
from coursekit.aws.errors import AWSError, bucket_name_problems, check_bucket_name, explained

UBUNTU = "ami-1e749f67"  # in moto's bundled us-east-1 AMI list (ubuntu-trusty-14.04, 2017)


@pytest.fixture
def sandbox():
    with aws.sandbox(validate_ec2=True) as sb:
        yield sb


def caught(call) -> AWSError:
    with pytest.raises(AWSError) as info:
        with explained():
            call()
    return info.value


# --------------------------------------------------------------------------- bucket names
@pytest.mark.parametrize("name, rule", [
    ("ab", "3 to 63 characters long (it has 2)"),
    ("a" * 64, "(it has 64)"),
    ("My-Bucket", "uppercase letters (it has M, B)"),
    ("my_bucket", "not '_'"),
    ("my bucket", "not a space"),
    ("-bucket", "begin and end with a letter or digit (it begins with '-')"),
    ("bucket-", "(it ends with '-')"),
    ("my..bucket", "two dots in a row"),
    ("192.168.5.4", "IP address"),
    ("xn--bucket", "must not start with 'xn--'"),
    ("sthree-bucket", "must not start with 'sthree-'"),
    ("bucket-s3alias", "must not end with '-s3alias'"),
    ("bucket--ol-s3", "must not end with '--ol-s3'"),
])
def test_each_naming_rule_is_named(name, rule):
    problems = bucket_name_problems(name)
    assert any(rule in p for p in problems), problems
    with pytest.raises(AWSError) as info:
        check_bucket_name(name)
    assert rule in info.value.problem and info.value.code == "InvalidBucketName"
    assert "3-63 lowercase letters" in info.value.fix


@pytest.mark.parametrize("name", ["abc", "my-notes-2024", "logs.example.com", "a" * 63, "0-9"])
def test_valid_names_pass(name):
    assert bucket_name_problems(name) == [] and check_bucket_name(name) == name


@pytest.mark.parametrize("name", ["My_Bucket", "ab", "-", "192.168.5.4", "xn--x", "x--ol-s3", "A" * 80, "..", ""])
def test_the_suggested_name_is_always_valid(name):
    assert bucket_name_problems(awserrors.suggest_bucket_name(name)) == []


def test_moto_accepts_names_aws_refuses_which_is_why_check_bucket_name_exists(sandbox):
    s3 = sandbox.client("s3")
    s3.create_bucket(Bucket="My_Bucket")  # AWS would answer InvalidBucketName
    assert "My_Bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert len(bucket_name_problems("My_Bucket")) == 2


def test_a_too_short_name_refused_by_moto_is_explained_with_the_rule(sandbox):
    err = caught(lambda: sandbox.client("s3").create_bucket(Bucket="ab"))
    assert err.code == "InvalidBucketName" and err.operation == "CreateBucket" and err.status == 400
    assert "'ab'" in err.problem and "3 to 63 characters long (it has 2)" in err.problem
    assert "ab-bucket" in err.fix
    assert isinstance(err.__cause__, ClientError)


def test_a_name_botocore_refuses_before_sending_is_explained_too(sandbox):
    err = caught(lambda: sandbox.client("s3").create_bucket(Bucket="my bucket"))
    assert err.code == "Param" and "not a space" in err.problem and "'my-bucket'" in err.fix


# --------------------------------------------------------------------------- S3 errors
def test_missing_bucket_and_key_are_named(sandbox):
    s3 = sandbox.client("s3")
    err = caught(lambda: s3.get_object(Bucket="no-such-bucket", Key="a.txt"))
    assert err.code == "NoSuchBucket" and "'no-such-bucket'" in err.problem and "list_buckets" in err.fix
    s3.create_bucket(Bucket="real-bucket")
    err = caught(lambda: s3.get_object(Bucket="real-bucket", Key="notes/todo.txt"))
    assert err.code == "NoSuchKey" and "'notes/todo.txt'" in err.problem and "'real-bucket'" in err.problem
    assert "Prefix" in err.fix
    err = caught(lambda: s3.head_object(Bucket="real-bucket", Key="gone.txt"))
    assert err.code == "404" and "no object 'gone.txt' in bucket 'real-bucket'" in err.problem


def test_bucket_not_empty_and_already_owned(sandbox):
    s3 = sandbox.client("s3")
    s3.create_bucket(Bucket="full-bucket")
    s3.put_object(Bucket="full-bucket", Key="k", Body=b"x")
    err = caught(lambda: s3.delete_bucket(Bucket="full-bucket"))
    assert err.code == "BucketNotEmpty" and "delete every object first" in err.fix


def test_a_version_id_of_another_key_is_named_also_when_copying(sandbox):
    s3 = sandbox.client("s3")
    s3.create_bucket(Bucket="versioned-bucket")
    s3.put_bucket_versioning(Bucket="versioned-bucket", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="versioned-bucket", Key="a.txt", Body=b"1")
    other = s3.put_object(Bucket="versioned-bucket", Key="a.txt.bak", Body=b"2")["VersionId"]
    for call in (lambda: s3.get_object(Bucket="versioned-bucket", Key="a.txt", VersionId=other),
                 lambda: s3.copy_object(Bucket="versioned-bucket", Key="a.txt", CopySource={
                     "Bucket": "versioned-bucket", "Key": "a.txt", "VersionId": other})):
        err = caught(call)
        assert err.code == "NoSuchVersion" and f"object 'a.txt' has no version '{other}'" in err.problem
        assert "v['Key'] == key" in err.fix


def test_creating_a_bucket_twice_outside_us_east_1():
    with aws.sandbox(region="eu-west-1") as sb:  # in us-east-1, AWS (and moto) answer 200 instead
        s3 = sb.client("s3")
        where = {"LocationConstraint": "eu-west-1"}
        s3.create_bucket(Bucket="twice-bucket", CreateBucketConfiguration=where)
        err = caught(lambda: s3.create_bucket(Bucket="twice-bucket", CreateBucketConfiguration=where))
    assert err.code == "BucketAlreadyOwnedByYou" and "you already own the bucket 'twice-bucket'" in err.problem


def test_bucket_policy_deny_is_explained_as_access_denied(sandbox):
    s3 = sandbox.client("s3")
    s3.create_bucket(Bucket="locked-bucket")
    s3.put_object(Bucket="locked-bucket", Key="secret.txt", Body=b"x")
    s3.put_bucket_policy(Bucket="locked-bucket", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::locked-bucket/*"}]}))
    err = caught(lambda: s3.get_object(Bucket="locked-bucket", Key="secret.txt"))
    assert err.status == 403
    assert "access denied" in err.problem and "s3:GetObject" in err.problem and "'locked-bucket'" in err.problem
    assert "Deny always wins" in err.problem and "get_bucket_policy" in err.fix


def test_iam_access_denied_names_the_user_and_action():
    with aws.sandbox(iam=True) as sb:
        sb.client("iam").create_user(UserName="bob")
        key = sb.client("iam").create_access_key(UserName="bob")["AccessKey"]
        bob = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                            region_name=sb.region).client("ec2")
        err = caught(bob.describe_instances)
    assert err.code == "AccessDenied" and "user/bob is not allowed to do ec2:DescribeInstances" in err.problem


def test_a_misspelt_parameter_gets_a_suggestion(sandbox):
    sandbox.client("s3").create_bucket(Bucket="real-bucket")
    err = caught(lambda: sandbox.client("s3").put_object(Bucket="real-bucket", Kee="a.txt", Body=b"x"))
    assert err.code == "Param" and "Kee" in err.problem and err.fix.startswith("did you mean Key?")
    assert "help(client.put_object)" in err.fix and "must be one of: ..." in err.problem


# --------------------------------------------------------------------------- EC2 errors
def test_unknown_and_malformed_amis(sandbox):
    ec2 = sandbox.client("ec2")
    err = caught(lambda: ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1))
    assert err.code == "InvalidAMIID.NotFound" and "no AMI 'ami-12345678' in us-east-1" in err.problem
    assert "describe_images" in err.fix
    err = caught(lambda: ec2.run_instances(ImageId="ubuntu-22.04", InstanceType="t3.micro", MinCount=1, MaxCount=1))
    assert err.code == "InvalidAMIID.Malformed" and "'ubuntu-22.04' is not an AMI ID" in err.problem


def test_a_misspelt_instance_type_gets_a_suggestion(sandbox):
    ec2 = sandbox.client("ec2")
    err = caught(lambda: ec2.run_instances(ImageId=UBUNTU, InstanceType="t3.mirco", MinCount=1, MaxCount=1))
    assert err.code == "InvalidInstanceType.NotFound" and "'t3.mirco' is not an EC2 instance type" in err.problem
    assert "did you mean t3.micro" in err.fix and "describe_instance_types" in err.fix


def test_without_validation_moto_accepts_any_ami_and_type():
    with aws.sandbox() as sb:  # why the lessons turn validate_ec2 on
        r = sb.client("ec2").run_instances(ImageId="ami-12345678", InstanceType="t3.gigantic", MinCount=1, MaxCount=1)
        assert r["Instances"][0]["InstanceType"] == "t3.gigantic"


def test_incorrect_instance_state_which_moto_never_sends(sandbox):
    ec2 = sandbox.client("ec2")
    iid = ec2.run_instances(ImageId=UBUNTU, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.start_instances(InstanceIds=[iid])  # AWS refuses this; moto starts the terminated instance
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    aws_answer = {"Error": {"Code": "IncorrectInstanceState", "Message": f"The instance '{iid}' is not in a state "
                            "from which it can be started."}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    err = awserrors.explain(ClientError(aws_answer, "StartInstances"))
    assert err.code == "IncorrectInstanceState" and "StartInstances is not possible" in err.problem
    assert "terminated instance never comes back" in err.fix


def test_an_unknown_instance_id(sandbox):
    err = caught(lambda: sandbox.client("ec2").stop_instances(InstanceIds=["i-0123456789abcdef0"]))
    assert err.code == "InvalidInstanceID.NotFound" and "i-0123456789abcdef0" in err.problem


def test_a_filter_moto_lacks_is_called_a_mock_limitation(sandbox):
    ec2 = sandbox.client("ec2")
    ec2.run_instances(ImageId=UBUNTU, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    err = caught(lambda: ec2.describe_instances(Filters=[{"Name": "launch-time", "Values": ["2025-*"]}]))
    assert err.code == "NotImplementedInMock" and "moto" in err.problem and "'launch-time'" in err.problem


def test_the_same_in_server_mode_where_moto_answers_500():
    with aws.sandbox(server=True) as sb:
        ec2 = sb.client("ec2")
        ec2.run_instances(ImageId=UBUNTU, InstanceType="t3.micro", MinCount=1, MaxCount=1)
        err = caught(lambda: ec2.describe_instances(Filters=[{"Name": "launch-time", "Values": ["2025-*"]}]))
        assert err.code == "ResponseParserError" and "mock does not implement" in err.problem
        err = caught(lambda: sb.client("s3").get_object(Bucket="no-such-bucket", Key="k"))
        assert err.code == "NoSuchBucket"


# --------------------------------------------------------------------------- the context manager
def test_show_prints_and_carries_on(sandbox, capsys):
    with explained(show=True) as outcome:
        sandbox.client("s3").get_object(Bucket="no-such-bucket", Key="k")
    assert not outcome.ok and outcome.error.code == "NoSuchBucket"
    out = capsys.readouterr().out
    assert out.startswith("✘ GetObject failed (NoSuchBucket): there is no bucket 'no-such-bucket'")
    assert "What to do:" in out
    with explained(show=True) as fine:
        sandbox.client("s3").list_buckets()
    assert fine.ok and fine.error is None


def test_other_errors_pass_through_unchanged():
    with pytest.raises(ZeroDivisionError):
        with explained(show=True):
            1 / 0
    assert awserrors.explain(ValueError("x")) is None
    with pytest.raises(AWSError) as info:  # our own AWSError is re-raised as it is, not wrapped
        with explained():
            check_bucket_name("No")
    assert info.value.__cause__ is None


def test_errors_survive_pickling(sandbox):
    err = caught(lambda: sandbox.client("s3").get_object(Bucket="no-such-bucket", Key="k"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.problem, copy.fix, copy.code, copy.status) == (err.problem, err.fix, err.code, err.status)


def test_docstring_examples():
    assert doctest.testmod(awserrors).failed == 0
