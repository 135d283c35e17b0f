"""AWS errors in the learner's terms: what was wrong, and what to do about it.

botocore's ``ClientError: An error occurred (InvalidAMIID.NotFound) when calling the RunInstances
operation`` names a code, not the mistake. :func:`explain` turns it (and botocore's own
``ParamValidationError``, raised before anything is sent) into an :class:`AWSError`, a
:class:`~coursekit.errors.CoursekitError` whose ``problem`` says what was wrong with *this* call
(which bucket-naming rule the name breaks, which AMI is missing in which region) and whose
``fix`` says what to do. The call's parameters are read from botocore's frame in the traceback.
Codes moto never sends (``IncorrectInstanceState``) are explained too: AWS sends them.

>>> bucket_name_problems("My_Bucket")
['it must not contain uppercase letters (it has M, B)', "it may contain only lowercase letters, digits, dots and hyphens (not '_')"]

In a notebook: ``with awserrors.explained(): ...`` raises the explanation instead of the
ClientError; ``with awserrors.explained(show=True) as outcome: ...`` prints it and carries on
(``outcome.error`` is the AWSError, or None).

Lessons: ``10-s3`` and ``11-ec2`` (introduced there), ``12-iam`` (AccessDenied).
"""
from __future__ import annotations

import contextlib
import difflib
import ipaddress
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import CoursekitError

#: Prefixes and suffixes S3 reserves (general purpose buckets, AWS's naming rules).
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

#: Instance types suggested when a name is close to one of them (not a list of all types).
COMMON_INSTANCE_TYPES = tuple(f"{fam}.{size}" for fam in ("t2", "t3", "t3a", "t4g", "m5", "m6i", "c5", "r5")
                              for size in ("nano", "micro", "small", "medium", "large", "xlarge", "2xlarge")
                              if fam[0] == "t" or size.endswith("large"))

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403", "Forbidden"}
_BAD_KEYS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "AuthFailure",
             "UnrecognizedClientException", "ExpiredToken"}
#: S3 operations whose IAM action is not simply "s3:<OperationName>".
_S3_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadObject": "s3:GetObject",
               "HeadBucket": "s3:ListBucket", "ListObjectVersions": "s3:ListBucketVersions",
               "CopyObject": "s3:GetObject + s3:PutObject", "ListBuckets": "s3:ListAllMyBuckets"}


class AWSError(CoursekitError):
    """An AWS (or botocore) refusal, explained. ``code`` is AWS's error code (``"Param"``
    for botocore's parameter validation), ``aws_message`` AWS's own words."""

    def __init__(self, problem: str, fix: str | None = None, *, code: str = "", operation: str = "",
                 aws_message: str = "", status: int | None = None, params: dict | None = None):
        super().__init__(problem, fix)
        self.code, self.operation, self.aws_message = code, operation, aws_message
        self.status, self.params = status, dict(params or {})



# --------------------------------------------------------------------------- bucket names
def bucket_name_problems(name: Any) -> list[str]:
    """Every S3 general-purpose bucket naming rule ``name`` breaks, in words ([] if none)."""
    if not isinstance(name, str):
        return [f"it must be a string, not {type(name).__name__}"]
    out = []
    if not 3 <= len(name) <= 63:
        out.append(f"it must be 3 to 63 characters long (it has {len(name)})")
    upper = sorted(set(re.findall(r"[A-Z]", name)), key=name.index)
    if upper:
        out.append(f"it must not contain uppercase letters (it has {', '.join(upper)})")
    bad = sorted(set(re.findall(r"[^a-zA-Z0-9.\-]", name)), key=name.index)
    if bad:
        out.append("it may contain only lowercase letters, digits, dots and hyphens (not "
                   + ", ".join("a space" if c == " " else repr(c) for c in bad) + ")")
    if name and not (name[0].isalnum() and name[-1].isalnum()):
        out.append(f"it must begin and end with a letter or digit (it {'begins' if not name[0].isalnum() else 'ends'}"
                   f" with {name[0] if not name[0].isalnum() else name[-1]!r})")
    if ".." in name:
        out.append("it must not contain two dots in a row")
    with contextlib.suppress(ValueError):
        ipaddress.IPv4Address(name)
        out.append("it must not look like an IP address")
    out += [f"it must not start with {p!r} (reserved by AWS)" for p in RESERVED_PREFIXES if name.startswith(p)]
    out += [f"it must not end with {s!r} (reserved by AWS)" for s in RESERVED_SUFFIXES if name.endswith(s)]
    return out


def suggest_bucket_name(name: str) -> str:
    """A valid name close to ``name`` (lowercased, other characters turned into hyphens)."""
    s = re.sub(r"[^a-z0-9.\-]+", "-", str(name).lower())
    s = re.sub(r"\.{2,}", ".", s).strip(".-")
    for p in RESERVED_PREFIXES:
        s = s[len(p):] if s.startswith(p) else s
    for x in RESERVED_SUFFIXES:
        s = s[: -len(x)] if s.endswith(x) else s
    with contextlib.suppress(ValueError):
        ipaddress.IPv4Address(s)
        s = "bucket-" + s.replace(".", "-")
    s = s[:63].strip(".-")
    if len(s) < 3:
        s = (s + "-bucket").strip("-.")
    return s if not bucket_name_problems(s) else "my-course-bucket"


def _bucket_name_fix(name: str) -> str:
    return ("choose a name of 3-63 lowercase letters, digits, hyphens (and dots), starting and ending with a "
            f"letter or digit, e.g. {suggest_bucket_name(name)!r}; names are global across all AWS accounts, so "
            "add something of your own (a project or team name)")


def check_bucket_name(name: str) -> str:
    """Return ``name`` if S3 would accept it, else raise :class:`AWSError` naming every rule it
    breaks. Call it before ``create_bucket``: moto accepts some names that AWS refuses."""
    problems = bucket_name_problems(name)
    if problems:
        raise AWSError(f"the bucket name {name!r} breaks S3's naming rules: " + "; ".join(problems),
                       _bucket_name_fix(name), code="InvalidBucketName", operation="(checked locally)")
    return name


# --------------------------------------------------------------------------- explaining errors
@dataclass
class _Call:
    code: str
    message: str
    operation: str = ""
    service: str = ""
    region: str = ""
    status: int | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = _Params(self.params)

    def p(self, key: str, default: Any = "?") -> Any:
        return self.params.get(key, default)


class _Params(dict):
    def __missing__(self, key: str) -> str:  # "{c.params[Key]}" in a message: "?" when absent
        return "?"


def _api_call(exc: BaseException) -> tuple[str, str, str, dict]:
    """(operation, service, region, params) from botocore's ``_make_api_call`` frame, if present."""
    tb = exc.__traceback__
    found = ("", "", "", {})
    while tb is not None:
        f = tb.tb_frame
        if f.f_code.co_name == "_make_api_call" and "api_params" in f.f_locals:
            meta = getattr(f.f_locals.get("self"), "meta", None)
            found = (str(f.f_locals.get("operation_name", "")),
                     getattr(getattr(meta, "service_model", None), "service_name", ""),
                     getattr(meta, "region_name", "") or "", dict(f.f_locals.get("api_params") or {}))
        tb = tb.tb_next
    return found


def _explain_bucket_name(c: _Call) -> tuple[str, str]:
    name = c.p("Bucket", "")
    problems = bucket_name_problems(name) or ["(no rule found locally: check its length, 3-63 characters)"]
    return f"the bucket name {name!r} breaks S3's naming rules: " + "; ".join(problems), _bucket_name_fix(name)


def _explain_denied(c: _Call) -> tuple[str, str]:
    m = re.search(r"not authorized to perform:?\s*(\S+)", c.message)
    action = m.group(1) if m else (_S3_ACTIONS.get(c.operation, f"s3:{c.operation}") if c.service == "s3"
                                   else f"{c.service}:{c.operation}" if c.service else c.operation)
    who = re.search(r"User: (\S+)", c.message)
    target = c.p("Bucket", "") and f" on bucket {c.p('Bucket')!r}" + (f", key {c.p('Key')!r}" if "Key" in c.params
                                                                        else "")
    return (f"access denied: {who.group(1) + ' is' if who else 'the caller is'} not allowed to do {action}"
            f"{target}. Either a policy says Deny for it (a Deny always wins over any Allow), or no policy "
            "says Allow (everything not allowed is denied)",
            "read the policies that apply: the bucket policy (s3.get_bucket_policy) and the IAM policies of the "
            "user, group or role making the call; then allow exactly this action on this resource, or call it "
            "as someone who may")


def _explain_instance_type(c: _Call) -> tuple[str, str]:
    t = str(c.p("InstanceType", "") or (re.findall(r"'([^']+)'", c.message) or ["?"])[0])
    close = difflib.get_close_matches(t, COMMON_INSTANCE_TYPES, n=2, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"{t!r} is not an EC2 instance type{f' in {c.region}' if c.region else ''}. Types are written "
            "family+generation, a dot, then a size: t3.micro, m5.large",
            hint + "list the real ones with ec2.describe_instance_types() (or describe_instance_type_offerings "
                   "for what this region sells)")


def _explain_ami(c: _Call) -> tuple[str, str]:
    ami = str(c.p("ImageId", "") or (re.findall(r"(ami-\w+)", c.message) or ["?"])[0])
    look = ("find one with ec2.describe_images(Owners=['amazon'], Filters=[{'Name': 'name', 'Values': "
            "['*ubuntu*']}]), or ask SSM for the latest Amazon Linux "
            "(/aws/service/ami-amazon-linux-latest/...)")
    if c.code.endswith("Malformed"):
        return f"{ami!r} is not an AMI ID: AMI IDs look like 'ami-' followed by hex digits (a name is not an ID)", look
    return (f"there is no AMI {ami!r} in {c.region or 'this region'}: AMI IDs belong to one region, and old "
            "images are withdrawn, so an ID copied from a tutorial or another region is usually not found", look)


def _version_asked(c: _Call) -> str:
    """The VersionId of a GetObject-like call, or of CopyObject's source (botocore turns that into
    the text "bucket/key?versionId=...")."""
    src = c.p("CopySource", "")
    if isinstance(src, dict):
        return str(src.get("VersionId", "?"))
    m = re.search(r"versionId=([^&]+)", str(src))
    return c.p("VersionId", "") or (m.group(1) if m else "?")


def _msg(problem: str, fix: str):
    return lambda c: (problem.format(c=c), fix.format(c=c))


_EXPLAIN = {
    "InvalidBucketName": _explain_bucket_name,
    "NoSuchBucket": _msg("there is no bucket {c.params[Bucket]!r} (in this account)",
                         "check the spelling, create it first (s3.create_bucket), or list yours with s3.list_buckets()"),
    "NoSuchKey": _msg("bucket {c.params[Bucket]!r} has no object with the key {c.params[Key]!r}",
                      "keys are matched exactly (case, and every '/'): list what is there with "
                      "s3.list_objects_v2(Bucket=..., Prefix=...)"),
    "NoSuchVersion": lambda c: (
        f"object {c.p('Key')!r} has no version {_version_asked(c)!r} (a VersionId belongs to one key: an ID "
        "listed for another key is not found)", "list the key's versions with s3.list_object_versions(Bucket=..., "
        "Prefix=key), keeping only v['Key'] == key"),
    "NoSuchBucketPolicy": _msg("bucket {c.params[Bucket]!r} has no bucket policy", "put one first with "
                               "s3.put_bucket_policy, or treat 'no policy' as the answer"),
    "BucketAlreadyOwnedByYou": _msg("you already own the bucket {c.params[Bucket]!r}",
                                    "use the one you have, or choose another name"),
    "BucketAlreadyExists": _msg("the bucket name {c.params[Bucket]!r} is taken by another AWS account: names are "
                                "global, shared by every account", "add something of your own to the name"),
    "BucketNotEmpty": _msg("bucket {c.params[Bucket]!r} still holds objects (or old versions), so it cannot be "
                           "deleted", "delete every object first (with versioning on: every version and "
                           "delete marker), then the bucket"),
    "InvalidAMIID.NotFound": _explain_ami,
    "InvalidAMIID.Malformed": _explain_ami,
    "InvalidInstanceType.NotFound": _explain_instance_type,
    "InvalidInstanceID.NotFound": _msg("no instance {c.params[InstanceIds]} in {c.region} (terminated instances "
                                       "disappear after a while; IDs belong to one region)", "use the InstanceId "
                                       "that run_instances returned (i-...), or find it with describe_instances()"),
    "InvalidInstanceID.Malformed": _msg("that is not an instance ID: {c.message}", "instance IDs look like "
                                        "'i-' and hex digits; find by tag with describe_instances(Filters=...)"),
    "IncorrectInstanceState": _msg("the instance is in a state where {c.operation} is not possible: {c.message}",
                                   "read its state first (describe_instances); wait for it with a waiter "
                                   "(ec2.get_waiter('instance_stopped')); a terminated instance never comes back: "
                                   "launch a new one"),
    "InvalidGroup.NotFound": _msg("no such security group: {c.message}", "create it first "
                                  "(create_security_group) and use the GroupId it returns"),
    "InvalidGroup.Duplicate": _msg("a security group with that name already exists: {c.message}",
                                   "reuse it (describe_security_groups) or pick another name"),
    "InvalidPermission.Duplicate": _msg("that rule is already in the security group",
                                        "nothing to do: rules are a set; read them with describe_security_groups"),
    "InvalidKeyPair.NotFound": _msg("no key pair named {c.params[KeyName]!r}", "create or import it first "
                                    "(create_key_pair / import_key_pair)"),
    "InvalidKeyPair.Duplicate": _msg("a key pair named {c.params[KeyName]!r} already exists", "reuse it, or "
                                     "delete it first; AWS never shows a private key twice"),
    "NoSuchEntity": _msg("IAM has no such user, group, role or policy: {c.message}", "check the name (IAM names "
                         "are case-sensitive) and create it first"),
    "EntityAlreadyExists": _msg("that IAM name is taken: {c.message}", "reuse it or pick another name"),
    "MalformedPolicyDocument": _msg("the policy document is not valid: {c.message}", "check the JSON: "
                                    "Version '2012-10-17', Statement as a list of {{Effect, Action, Resource}}"),
}


def _explain(c: _Call) -> tuple[str, str]:
    if c.code == "Param":
        if "Invalid bucket name" in c.message:
            return _explain_bucket_name(c)
        m = re.search(r'Unknown parameter in input: "(\w+)", must be one of: ([\w, ]+)', c.message)
        close = difflib.get_close_matches(m.group(1), m.group(2).split(", "), n=1) if m else []
        message = re.sub(r"(must be one of: )[\w, ]+", r"\1...", c.message)
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", c.operation).lower()
        return (f"botocore refused the call before sending it: {message}",
                (f"did you mean {close[0]}? " if close else "")
                + f"compare your arguments with help(client.{method}) (names are case-sensitive)")
    if c.code in _DENIED:
        return _explain_denied(c)
    if c.code in _BAD_KEYS:
        return (f"AWS does not accept these credentials ({c.code})", "make clients from the sandbox "
                "(sb.client(...)); after sb.reset() with iam=True, make them again")
    if c.code == "404" and c.operation in ("HeadObject", "HeadBucket"):
        what = f"no object {c.p('Key')!r} in bucket {c.p('Bucket')!r}" if c.operation == "HeadObject" \
            else f"no bucket {c.p('Bucket')!r}"
        return (f"{what} (a HEAD answer has no body, so AWS only says '404 Not Found')",
                "list what is there (list_objects_v2 / list_buckets) and check the spelling")
    if c.code == "InvalidParameterValue" and ("instance type" in c.message.lower() or "InstanceType" in c.params
                                              and c.operation == "RunInstances" and "type" in c.message.lower()):
        return _explain_instance_type(c)
    if c.code in _EXPLAIN:
        try:
            return _EXPLAIN[c.code](c)
        except (KeyError, AttributeError, IndexError):
            pass
    if c.status and c.status >= 500:
        return (f"the service failed on {c.operation} ({c.code}: {c.message})", "in this course the service is "
                "moto, a mock: it may not implement this call or option. Try a simpler form of the request")
    return (f"AWS refused {c.operation or 'the call'} with {c.code}: {c.message}",
            f"look up {c.code!r} under 'Errors' in the API reference of {c.operation or 'the operation'}")


_BOTOCORE = {
    "ResponseParserError": ("the answer was not AWS's format (moto's server failed inside: in this course "
                            "that usually means the mock does not implement this request or option)",
                            "try a simpler form of the request; real AWS would answer it"),
    "EndpointConnectionError": ("nothing answers at the endpoint (the sandbox's moto server is stopped?)",
                                "start a sandbox (coursekit.aws.sandbox()) and make the client from it"),
    "NoCredentialsError": ("botocore found no credentials", "start the sandbox first: coursekit.aws.sandbox()"),
}


def explain(exc: BaseException) -> AWSError | None:
    """The :class:`AWSError` for a botocore ``ClientError``/``ParamValidationError``, or for a
    ``NotImplementedError`` raised inside moto; ``None`` for anything else."""
    if isinstance(exc, AWSError):
        return exc
    operation, service, region, params = _api_call(exc)
    mod = type(exc).__module__
    if isinstance(exc, NotImplementedError) and _raised_in_moto(exc):
        return AWSError(f"moto, the mock AWS this course uses, does not implement this: {exc}".split(". Feel free")[0],
                        "check the option in AWS's API reference: if AWS has it, only the mock lacks it, so leave it "
                        "out here (e.g. filter in Python instead); if AWS does not, it would refuse it too",
                        code="NotImplementedInMock", operation=operation, params=params)
    if not mod.startswith("botocore"):
        return None
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        call = _Call(str(err.get("Code", "Unknown")), str(err.get("Message", "")),
                     operation or str(getattr(exc, "operation_name", "")), service, region,
                     (response.get("ResponseMetadata") or {}).get("HTTPStatusCode"), params)
    elif type(exc).__name__ == "ParamValidationError":
        call = _Call("Param", str(getattr(exc, "kwargs", {}).get("report", exc)).strip(), operation, service,
                     region, None, params)
    elif type(exc).__name__ in _BOTOCORE:
        problem, fix = _BOTOCORE[type(exc).__name__]
        return AWSError(f"{operation or 'the AWS call'} failed: {problem}", fix, code=type(exc).__name__,
                        operation=operation, params=params)
    else:
        return None
    problem, fix = _explain(call)
    head = f"{call.operation or 'the AWS call'} failed" + (f" ({call.code})" if call.code != "Param" else "")
    said = f" [AWS said: {call.message}]" if call.message and call.code != "Param" and call.message not in problem \
        else ""
    return AWSError(f"{head}: {problem}{said}", fix, code=call.code, operation=call.operation,
                    aws_message=call.message, status=call.status, params=params)


def _raised_in_moto(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "/moto/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


class Outcome:
    """What :func:`explained` saw: ``error`` is the :class:`AWSError`, or None if all went well."""

    def __init__(self) -> None:
        self.error: AWSError | None = None

    ok = property(lambda self: self.error is None)


@contextlib.contextmanager
def explained(*, show: bool = False) -> Iterator[Outcome]:
    """Turn AWS errors raised in the block into :class:`AWSError` (raised from the original).

    ``show=True``: print the explanation instead of raising, and carry on after the block
    (for a lesson cell that fails on purpose); the error is in ``outcome.error``.
    Anything that is not an AWS error passes through unchanged.
    """
    outcome = Outcome()
    try:
        yield outcome
    except Exception as exc:  # noqa: BLE001 - only AWS errors are replaced; the rest re-raised
        err = explain(exc)
        if err is None:
            raise
        outcome.error = err
        if not show:
            if err is exc:
                raise
            raise err from exc
        print(f"✘ {err}", file=sys.stdout)


__all__ = ["AWSError", "explain", "explained", "Outcome", "bucket_name_problems", "check_bucket_name",
           "suggest_bucket_name", "RESERVED_PREFIXES", "RESERVED_SUFFIXES"]
