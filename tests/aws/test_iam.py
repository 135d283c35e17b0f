"""coursekit.aws.iam: malformed policies reported with the line at fault, explained line by line,
decided by AWS's rules; and, against real moto with IAM enforced, that those rules and findings
agree with what the sandbox does (plus the gaps lesson 12 tells learners about)."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from coursekit import aws
from coursekit.aws import iam as policies
from coursekit.errors import CoursekitError
from coursekit.aws.errors import AWSError
from coursekit.aws.iam import PolicyError

GOOD = """{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadReports",
      "Effect": "Allow",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::reports/2024/*"
    },
    {
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": "arn:aws:s3:::reports",
      "Condition": {"StringLike": {"s3:prefix": ["2024/*"]}}
    }
  ]
}"""


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def first(text, **kw) -> policies.Problem:
    found = policies.problems(text, **kw)
    assert found, f"no problem found in:\n{text}"
    return found[0]


# --------------------------------------------------------------------------- JSON syntax, with lines
@pytest.mark.parametrize("text, line, words", [
    (edit('2024/*"\n    }', '2024/*",\n    }'), 8, "comma after the last item"),
    (edit('"2012-10-17",', '"2012-10-17"'), 2, "comma is missing"),
    (edit('"Sid": "ReadReports"', "'Sid': 'ReadReports'"), 5, "single quotes"),
    (edit('  "Version"', '  // read-only policy\n  "Version"'), 2, "comment"),
    (edit('"Sid": "ReadReports"', '"Sid": True'), 5, "True is Python"),
    (edit('"Sid": "ReadReports"', '"Sid": "ReadReports'), 5, "never closed"),
    (GOOD[:GOOD.index('    {\n      "Effect"')], 9, "ends too early"),
    (GOOD + "\n}", 18, "after the end"),
    (edit('"Sid":', "Sid:"), 5, "without double quotes"),
    ("   \n", 1, "empty"),
])
def test_json_syntax_errors_name_their_line(text, line, words):
    p = first(text)
    assert (p.line, words in p.message) == (line, True), p
    assert p.fix


def test_check_raises_a_coursekit_error_with_the_lines_around_the_fault():
    text = edit('2024/*"\n    }', '2024/*",\n    }')
    with pytest.raises(PolicyError) as info:
        policies.check(text)
    err = info.value
    assert isinstance(err, CoursekitError) and err.fix == "delete the comma at the end of line 8"
    assert ">   8 |" in str(err) and '"arn:aws:s3:::reports/2024/*",' in str(err)
    assert [p.line for p in err.problems] == [8]


# --------------------------------------------------------------------------- the policy grammar
@pytest.mark.parametrize("text, line, words", [
    (edit('"Action": "s3:GetObject"', '"Actions": "s3:GetObject"'), 7, 'did you mean "Action"'),
    (edit('"Version"', '"version"'), 2, "case-sensitive"),
    (edit('"Effect": "Allow"', '"effect": "Allow"'), 6, "case-sensitive"),
    (edit('"Statement"', '"Statment"'), 3, 'did you mean "Statement"'),
    (edit('"Effect": "Allow"', '"Effect": "allow"'), 6, 'exactly "Allow" or "Deny"'),
    (edit('"Effect": "Allow"', '"Effect": "Permit"'), 6, 'exactly "Allow" or "Deny"'),
    (edit('"Action": "s3:GetObject"', '"Action": 42'), 7, "text or a list"),
    (edit('"Action": "s3:GetObject"', '"Action": "s3.GetObject"'), 7, "not an action"),
    (edit('"Action": ["s3:ListBucket"]', '"Action": []'), 12, "empty list"),
    (edit('"arn:aws:s3:::reports/2024/*"', '"reports/2024/*"'), 8, "not an ARN"),
    (edit('"arn:aws:s3:::reports/2024/*"', '"arn:aws:s3::reports/2024/*"'), 8, "six parts"),
    (edit('"arn:aws:s3:::reports"', '"arn:aws:s3:us-east-1:123456789012:reports"'), 13, "no region or account"),
    (edit('"Version": "2012-10-17"', '"Version": "2024-05-01"'), 2, "not today's date"),
    (edit('"Sid": "ReadReports"', '"Sid": "read-reports"'), 5, "letters and digits"),
    (edit('"StringLike"', '"StringLikee"'), 14, 'did you mean "StringLike"'),
    (edit('"Effect": "Allow",\n      "Action": ["s3:ListBucket"]',
          '"Effect": "Allow",\n      "Action": ["s3:ListBucket"],\n      "Action": "s3:*"'), 13, "appears twice"),
    (edit('"Effect": "Allow",\n      "Action": "s3:GetObject"',
          '"Effect": "Allow",\n      "Principal": "*",\n      "Action": "s3:GetObject"'), 7, "has no Principal"),
    (edit('"Action": "s3:GetObject",', '"Action": "s3:GetObject",\n      "NotAction": "s3:PutObject",'), 8,
     "not both"),
])
def test_grammar_mistakes_name_their_line(text, line, words):
    found = policies.problems(text)
    assert any(p.line == line and words in p.message for p in found), found


def test_missing_parts():
    assert [p.message for p in policies.problems("{}")] == ["the policy has no Version", "the policy has no Statement"]
    assert "empty list" in first('{"Version": "2012-10-17", "Statement": []}').message
    no_resource = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}
    assert "no Resource" in first(no_resource).message
    assert "no Effect" in first({"Version": "2012-10-17", "Statement": {"Action": "s3:*", "Resource": "*"}}).message
    assert "a JSON object" in first("[]").message
    assert "a statement must be an object" in first('{"Version": "2012-10-17", "Statement": ["s3:*"]}').message


def test_a_misspelt_statement_key_is_still_checked_inside():
    text = edit('"Statement"', '"Statements"', edit('"Effect": "Allow"', '"Effect": "allow"'))
    assert [p.line for p in policies.problems(text)] == [3, 6]


def test_duplicate_sids_and_kinds_of_policy():
    two = {"Version": "2012-10-17", "Statement": [
        {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Sid": "A", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    assert "used twice" in first(two).message
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/ana"}, "Action": "sts:AssumeRole"}]}
    assert policies.problems(trust, kind="trust") == []
    assert "no Resource" in first(trust).message  # as an identity policy it lacks one (and has a Principal)
    with_resource = json.loads(json.dumps(trust))
    with_resource["Statement"][0]["Resource"] = "*"
    assert "trust policy has no Resource" in first(with_resource, kind="trust").message
    assert "needs a Principal" in first(GOOD, kind="resource").message
    with pytest.raises(AWSError):
        policies.problems(GOOD, kind="bucket")


def test_a_dict_is_numbered_as_dumps_prints_it():
    doc = json.loads(GOOD)
    doc["Statement"][1]["Effect"] = "allow"
    text = policies.dumps(doc)
    p = first(doc)
    assert '"Effect": "allow"' in text.splitlines()[p.line - 1]
    assert policies.check(json.loads(GOOD)) == json.loads(GOOD)
    with pytest.raises(PolicyError, match="JSON text or a dict"):
        policies.check(42)


# --------------------------------------------------------------------------- explain
def test_explain_says_what_each_line_means():
    ex = policies.explain(GOOD)
    notes = {n: note for n, _, note in ex.rows}
    assert len(ex.rows) == len(GOOD.splitlines())
    assert "version of the policy language" in notes[2]
    assert notes[6] == "statement 1 ALLOWS what it matches"
    assert notes[7] == "s3:GetObject (read objects)"
    assert notes[8] == 'the objects in reports whose key starts with "2024/"'
    assert "the bucket reports itself" in notes[13]
    assert notes[14] == 'only when s3:prefix StringLike ["2024/*"]'
    assert ex.statements[1].endswith("(only under its Condition).")
    assert "<table>" in ex._repr_html_() and "&quot;Version&quot;" in ex._repr_html_()
    assert repr(ex) == str(ex) and " 8 |" in str(ex)


def test_explain_trust_policies_and_refuses_broken_ones():
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    ex = policies.explain(trust, kind="trust")
    assert "to the AWS service ec2.amazonaws.com, on this role" in ex.statements[0]
    assert policies.describe_resource("arn:aws:iam::123456789012:role/deployer") == "the iam role deployer"
    assert policies.describe_action("s3:Get*") == "every s3 action matching Get*"
    with pytest.raises(PolicyError):
        policies.explain(edit('"Effect": "Allow"', '"Effect": "allow"'))


# --------------------------------------------------------------------------- decide
DENY_HR = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/hr/*"}]}
ALLOW_ALL_READS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::reports/*"}]}


def test_decide_applies_the_evaluation_rules():
    assert policies.decide(GOOD, "s3:GetObject", "arn:aws:s3:::reports/2024/q1.csv")
    assert policies.decide(GOOD, "S3:getobject", "arn:aws:s3:::reports/2024/q1.csv"), "actions ignore case"
    assert not policies.decide(GOOD, "s3:GetObject", "arn:aws:s3:::Reports/2024/q1.csv"), "resources do not"
    d = policies.decide(GOOD, "s3:PutObject", "arn:aws:s3:::reports/2024/q1.csv")
    assert not d and "denied by default" in d.reason
    both = policies.decide([ALLOW_ALL_READS, DENY_HR], "s3:GetObject", "arn:aws:s3:::reports/hr/pay.csv")
    assert not both and "policy 2, statement 1" in both.reason and "explicit Deny" in both.reason
    assert policies.decide([ALLOW_ALL_READS, DENY_HR], "s3:GetObject", "arn:aws:s3:::reports/2024/q1.csv")
    listing = policies.decide(GOOD, "s3:ListBucket", "arn:aws:s3:::reports")
    assert listing and "if its Condition holds" in listing.reason
    not_action = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert policies.decide(not_action, "s3:PutObject", "arn:aws:s3:::x/y")
    assert not policies.decide(not_action, "iam:CreateUser", "*")
    assert policies.action_for("s3", "ListObjectsV2") == "s3:ListBucket"
    assert policies.action_for("iam", "ListUsers") == "iam:ListUsers"


# --------------------------------------------------------------------------- against real moto
@pytest.fixture(scope="module")
def enforced():
    aws.stop()
    sb = aws.sandbox(iam=True)
    s3 = sb.client("s3")
    s3.create_bucket(Bucket="reports")
    for key in ("2024/q1.csv", "hr/pay.csv"):
        s3.put_object(Bucket="reports", Key=key, Body=b"x")
    yield sb
    sb.stop()


def user_with(sb, name, *documents):
    iam = sb.client("iam")
    iam.create_user(UserName=name)
    for i, doc in enumerate(documents):
        iam.put_user_policy(UserName=name, PolicyName=f"p{i}", PolicyDocument=doc if isinstance(doc, str)
                            else json.dumps(doc))
    return policies.session_for(iam.create_access_key(UserName=name)["AccessKey"], sb)


BAD_FOR_IAM = [
    edit('2024/*"\n    }', '2024/*",\n    }'),
    edit('"Action": "s3:GetObject"', '"Actions": "s3:GetObject"'),
    edit('"Effect": "Allow"', '"Effect": "allow"'),
    edit('"arn:aws:s3:::reports/2024/*"', '"reports/2024/*"'),
    edit('"arn:aws:s3:::reports/2024/*"', '"arn:aws:s3::reports/2024/*"'),
    edit('"Version": "2012-10-17"', '"Version": "2024-05-01"'),
    edit('"Action": "s3:GetObject"', '"Action": "s3.GetObject"'),
    edit('"Action": ["s3:ListBucket"]', '"Action": []'),
    edit('"StringLike"', '"StringLikee"'),
    '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    '{"Version": "2012-10-17"}',
]


@pytest.mark.parametrize("text", BAD_FOR_IAM, ids=range(len(BAD_FOR_IAM)))
def test_what_iam_refuses_coursekit_flags_with_a_line(enforced, text):
    iam = enforced.client("iam")
    if "target" not in {u["UserName"] for u in iam.list_users()["Users"]}:
        iam.create_user(UserName="target")
    with pytest.raises(ClientError) as info:
        iam.put_user_policy(UserName="target", PolicyName="p", PolicyDocument=text)
    assert info.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert policies.problems(text), "moto refused it, coursekit found nothing"


def test_decide_agrees_with_the_enforced_sandbox(enforced):
    docs = [GOOD, ALLOW_ALL_READS, DENY_HR]
    s3 = user_with(enforced, "checked", *docs).client("s3")
    calls = [("get_object", {"Key": "2024/q1.csv"}), ("get_object", {"Key": "hr/pay.csv"}),
             ("put_object", {"Key": "2024/new.csv", "Body": b"x"}), ("delete_object", {"Key": "2024/q1.csv"})]
    for method, params in calls:
        got = policies.attempt(s3, method, Bucket="reports", **params)
        resource = f"arn:aws:s3:::reports/{params['Key']}"
        assert got.allowed == bool(policies.decide(docs, got.action, resource)), (got, resource)
    assert [policies.attempt(s3, m, Bucket="reports", **p).allowed for m, p in calls] == [True, False, False, False]


def test_attempt_tells_denied_from_other_errors(enforced):
    admin = enforced.client("s3")
    missing = policies.attempt(admin, "get_object", Bucket="reports", Key="nothing-here")
    assert missing.allowed and missing.code == "NoSuchKey" and missing.action == "s3:GetObject"
    nobody = user_with(enforced, "nobody").client("s3")
    denied = policies.attempt(nobody, "list_objects_v2", Bucket="reports")
    assert (denied.allowed, denied.code, denied.action) == (False, "AccessDenied", "s3:ListBucket")
    assert "DENIED (AccessDenied)" in str(denied)
    fake = policies.session_for({"AccessKeyId": "AKIAFAKEFAKEFAKE1234", "SecretAccessKey": "x"}, enforced)
    assert policies.attempt(fake.client("s3"), "list_buckets").code == "InvalidAccessKeyId"


def test_session_for_signs_as_the_user_or_the_role(enforced):
    iam = enforced.client("iam")
    ana = user_with(enforced, "ana-role-test", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})
    arn = ana.client("sts").get_caller_identity()["Arn"]
    assert arn.endswith(":user/ana-role-test")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": arn}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="reader-test", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName="reader-test", PolicyName="r", PolicyDocument=json.dumps(ALLOW_ALL_READS))
    creds = ana.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="test")["Credentials"]
    as_role = policies.session_for(creds)
    assert ":assumed-role/reader-test/test" in as_role.client("sts").get_caller_identity()["Arn"]
    assert policies.attempt(as_role.client("s3"), "get_object", Bucket="reports", Key="hr/pay.csv").allowed
    assert not policies.attempt(ana.client("s3"), "get_object", Bucket="reports", Key="hr/pay.csv").allowed


def test_the_moto_gaps_lesson_12_states_are_still_true(enforced):
    """If one of these starts failing, moto changed: update section 8 of notebooks/12-iam.ipynb."""
    iam = enforced.client("iam")
    never = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports",
         "Condition": {"StringEquals": {"s3:prefix": "no-such-prefix/"}}}]}
    gap = user_with(enforced, "gaps", never)
    assert policies.attempt(gap.client("s3"), "list_objects_v2", Bucket="reports", Prefix="hr/").allowed, \
        "moto now evaluates conditions"
    managed = policies.attempt(iam, "attach_user_policy", UserName="gaps",
                               PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert managed.code == "NoSuchEntity", "AWS-managed policies are loaded now"
    with pytest.raises(NotImplementedError):
        iam.simulate_principal_policy(PolicySourceArn="arn:aws:iam::123456789012:user/gaps", ActionNames=["s3:*"])
    reader = user_with(enforced, "inactive", ALLOW_ALL_READS)
    key_id = reader._session.get_credentials().access_key
    iam.update_access_key(UserName="inactive", AccessKeyId=key_id, Status="Inactive")
    assert policies.attempt(reader.client("s3"), "get_object", Bucket="reports", Key="2024/q1.csv").allowed, \
        "moto now refuses inactive keys"
    may_assume = user_with(enforced, "root-trust", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="account-trust", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    assert not policies.attempt(may_assume.client("sts"), "assume_role", RoleArn=role["Arn"],
                                RoleSessionName="xx").allowed, "moto now honours account principals"
    own = user_with(enforced, "get-self", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::123456789012:user/get-self"}]})
    assert not policies.attempt(own.client("iam"), "get_user", UserName="get-self").allowed, \
        "moto now checks IAM resource ARNs"


def test_presigned_urls_fail_with_iam_enforced_in_server_mode(monkeypatch):
    """Lesson 12, section 8: with IAM enforcement on, moto's server answers a presigned GET with HTTP 500."""
    monkeypatch.setattr(logging.getLogger("werkzeug"), "disabled", True)  # its traceback of moto's KeyError
    aws.stop()
    with aws.sandbox(iam=True, server=True) as sb:
        s3 = sb.client("s3")
        s3.create_bucket(Bucket="shared")
        s3.put_object(Bucket="shared", Key="a.txt", Body=b"hello")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "a.txt"}, ExpiresIn=60)
        assert url.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(url, timeout=10)
        assert info.value.code == 500, "moto now serves presigned URLs with IAM enforced: update lesson 12"
        assert s3.list_buckets()["Buckets"], "the server survives it"
