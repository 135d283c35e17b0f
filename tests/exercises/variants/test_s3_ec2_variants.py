"""Variants of the S3 and EC2 answers (exercises 10 and 11): right ones written another way pass (another
boto3 spelling, the resource API, a loop instead of a filter), plausible wrong ones fail."""
from __future__ import annotations

from .harness import variant_tests

VARIANTS = {
    ("10-s3", "q1"): {
        "waiting for the bucket, every versioning field given": (True, """
def make_versioned_bucket(s3, name):
    s3.create_bucket(Bucket=name)
    s3.get_waiter("bucket_exists").wait(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"MFADelete": "Disabled", "Status": "Enabled"})
"""),
        "versioning suspended, not enabled": (False, """
def make_versioned_bucket(s3, name):
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
"""),
        "a name of its own": (False, """
def make_versioned_bucket(s3, name):
    s3.create_bucket(Bucket="my-bucket")
    s3.put_bucket_versioning(Bucket="my-bucket", VersioningConfiguration={"Status": "Enabled"})
"""),
    },
    ("10-s3", "q2"): {
        "the versions sorted by date": (True, """
def restore_previous(s3, bucket, key):
    versions = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["Key"] == key]
    versions.sort(key=lambda v: v["LastModified"], reverse=True)
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=versions[1]["VersionId"])["Body"].read()
    return s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
"""),
        "deleting the newest version instead": (False, """
def restore_previous(s3, bucket, key):
    versions = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["Key"] == key]
    newest = next(v for v in versions if v["IsLatest"])
    s3.delete_object(Bucket=bucket, Key=key, VersionId=newest["VersionId"])
    return s3.head_object(Bucket=bucket, Key=key)["VersionId"]
"""),
        "the oldest version, not the previous one": (False, """
def restore_previous(s3, bucket, key):
    versions = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["Key"] == key]
    oldest = min(versions, key=lambda v: v["LastModified"])
    answer = s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key,
                                                                "VersionId": oldest["VersionId"]})
    return answer["VersionId"]
"""),
    },
    ("10-s3", "q3"): {
        "a loop with continuation tokens": (True, """
def keys_under(s3, bucket, prefix):
    keys, token = [], None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **extra)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return sorted(keys)
        token = page["NextContinuationToken"]
"""),
        "only the first page": (False, """
def keys_under(s3, bucket, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
"""),
        "a prefix test on the text, without the slash": (False, """
def keys_under(s3, bucket, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].startswith(prefix.rstrip("/")))
"""),
    },
    ("11-ec2", "q1"): {
        "two calls of one instance each": (True, """
def launch_pair(ec2, ami):
    ids = []
    for _ in range(2):
        r = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1)
        ids.append(r["Instances"][0]["InstanceId"])
    ec2.create_tags(Resources=ids, Tags=[{"Key": "project", "Value": "shop"}])
    ec2.stop_instances(InstanceIds=ids[1:])
    return ids
"""),
        "the stopped one first": (False, """
def launch_pair(ec2, ami):
    r = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=2, MaxCount=2,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "project", "Value": "shop"}]}])
    a, b = (i["InstanceId"] for i in r["Instances"])
    ec2.stop_instances(InstanceIds=[a])
    return [a, b]
"""),
        "terminated, not stopped": (False, """
def launch_pair(ec2, ami):
    r = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=2, MaxCount=2,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "project", "Value": "shop"}]}])
    a, b = (i["InstanceId"] for i in r["Instances"])
    ec2.terminate_instances(InstanceIds=[b])
    return [a, b]
"""),
    },
    ("11-ec2", "q2"): {
        "filtered in Python over every page": (True, """
def running_in_project(ec2, project):
    out = []
    for page in ec2.get_paginator("describe_instances").paginate():
        for r in page["Reservations"]:
            for i in r["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                if tags.get("project") == project and i["State"]["Name"] == "running":
                    out.append(i["InstanceId"])
    return sorted(out)
"""),
        "only the first reservation": (False, """
def running_in_project(ec2, project):
    r = ec2.describe_instances(Filters=[{"Name": "tag:project", "Values": [project]},
                                        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    return sorted(i["InstanceId"] for i in r[0]["Instances"]) if r else []
"""),
        "every state, not only running": (False, """
def running_in_project(ec2, project):
    r = ec2.describe_instances(Filters=[{"Name": "tag:project", "Values": [project]}])["Reservations"]
    return sorted(i["InstanceId"] for x in r for i in x["Instances"])
"""),
    },
    ("11-ec2", "q3"): {
        "one call per rule, IPv4 ranges by name": (True, """
def web_group(ec2, name):
    gid = ec2.create_security_group(GroupName=name, Description="web")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0")
    ec2.authorize_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="10.0.0.0/8")
    return gid
"""),
        "SSH open to the world": (False, """
def web_group(ec2, name):
    gid = ec2.create_security_group(GroupName=name, Description="web")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return gid
"""),
        "every port from the office": (False, """
def web_group(ec2, name):
    gid = ec2.create_security_group(GroupName=name, Description="web")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    return gid
"""),
    },
}
test_variant = variant_tests(VARIANTS)
