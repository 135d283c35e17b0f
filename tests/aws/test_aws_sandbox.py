"""The AWS sandbox: moto for real, and a guard that nothing escapes to real AWS.

No mocks of our own: every test drives real boto3 against real moto (in-process or a
loopback server). To prove that a refused request made *no* connection, the tests watch
CPython's audit events ``socket.getaddrinfo`` / ``socket.connect`` (a DNS lookup or a
connect to a non-loopback address would show there), instead of patching sockets.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import sys
import textwrap
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.httpsession import URLLib3Session

import coursekit.aws.mock as aws
import coursekit.aws.guard as awsguard
from coursekit.aws.guard import RealAWSBlocked
from coursekit.errors import AWSSandboxError, CoursekitError

REAL_LOOKING_KEY = "AKIAIOSFODNN7EXAMPLE"
REAL_LOOKING_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# --------------------------------------------------------------------- network watch
_NET_EVENTS = {
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.connect",
    "socket.sendto",
}
_watch: list | None = None


def _audit(event, args):  # installed once; cheap when not watching
    if _watch is not None and event in _NET_EVENTS:
        target = args[1] if event in ("socket.connect", "socket.sendto") else args[0]
        _watch.append((event, target))


sys.addaudithook(_audit)


def _is_loopback_target(target) -> bool:
    host = target[0] if isinstance(target, tuple) else target
    if isinstance(host, bytes):
        host = host.decode()
    return awsguard.is_loopback_host(str(host)) if host else True


@contextlib.contextmanager
def net_watch():
    """Collect DNS lookups and connects made inside the block."""
    global _watch
    seen: list = []
    _watch = seen
    try:
        yield seen
    finally:
        _watch = None


def outbound(seen) -> list:
    return [(e, t) for e, t in seen if not _is_loopback_target(t)]


# --------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def leave_things_as_found():
    """Every test leaves os.environ, boto3's default session and the guard as it found
    them, and no sandbox running."""
    env = dict(os.environ)
    default_session = boto3.DEFAULT_SESSION
    yield
    leftover = aws.active()
    if leftover is not None:
        leftover.stop()
    mode = awsguard.mode()
    awsguard.set_mode("block")
    awsguard.clear_recorded()
    changed = {
        k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k) and k != "PYTEST_CURRENT_TEST"
    }
    for k in changed:
        if k in env:
            os.environ[k] = env[k]
        else:
            del os.environ[k]
    session_changed = boto3.DEFAULT_SESSION is not default_session
    boto3.DEFAULT_SESSION = default_session
    assert leftover is None, "a test left a sandbox running"
    assert mode == "block", "a test left the guard in record mode"
    assert not changed, f"a test changed os.environ: {sorted(changed)}"
    assert not session_changed, "a test left boto3.DEFAULT_SESSION changed"


@pytest.fixture
def start():
    """start(**kw) -> a started Sandbox, always stopped at the end of the test."""
    made = []

    def _start(*args, **kw):
        sb = aws.sandbox(*args, **kw)
        made.append(sb)
        return sb

    yield _start
    for sb in reversed(made):
        sb.stop()


@pytest.fixture
def outside(monkeypatch, tmp_path):
    """Outside any sandbox, with the guard installed, real-looking keys in the
    environment and no shared config files (so nothing but the guard stops a call)."""
    assert aws.active() is None
    awsguard.install()
    for key in list(os.environ):
        if key.startswith("AWS_") and key != "AWS_CA_BUNDLE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", REAL_LOOKING_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", REAL_LOOKING_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return monkeypatch


def assert_refused(call, *, host_suffix: str):
    """call() must raise RealAWSBlocked, fast, with no DNS lookup and no outbound connect."""
    with net_watch() as seen:
        t0 = time.perf_counter()
        with pytest.raises(Exception) as info:
            call()
        elapsed = time.perf_counter() - t0
    exc = info.value
    # The guard refused it: not a DNS failure, not a connection error, not a timeout.
    assert type(exc) is awsguard.RealAWSBlocked, f"{type(exc).__name__}: {exc}"
    assert not isinstance(exc, EndpointConnectionError)
    assert isinstance(exc, AWSSandboxError) and isinstance(exc, CoursekitError)
    assert exc.host.endswith(host_suffix), exc.host
    assert "coursekit.aws.sandbox()" in str(exc) and "never real AWS" in str(exc)
    assert outbound(seen) == [], f"network activity before the refusal: {outbound(seen)}"
    assert elapsed < 2.0, f"took {elapsed:.2f}s: did something wait on the network?"
    return exc


# --------------------------------------------------------------------- the six escapes
def test_a_default_boto3_client_outside_mock_is_refused(outside):
    s3 = boto3.client("s3")  # the module-level default session
    exc = assert_refused(s3.list_buckets, host_suffix="amazonaws.com")
    assert exc.host in ("s3.amazonaws.com", "s3.us-east-1.amazonaws.com")


def test_a2_no_credentials_instance_metadata_is_refused(outside):
    # With no credentials at all, botocore asks the EC2 metadata service: real AWS too.
    outside.delenv("AWS_ACCESS_KEY_ID")
    outside.delenv("AWS_SECRET_ACCESS_KEY")
    # botocore resolves credentials when the client is made: that is where it is refused.
    exc = assert_refused(lambda: boto3.client("s3").list_buckets(), host_suffix="169.254.169.254")
    assert "instance-metadata" in str(exc)


def test_b_fresh_session_client_outside_mock_is_refused(outside):
    session = boto3.Session(
        aws_access_key_id=REAL_LOOKING_KEY,
        aws_secret_access_key=REAL_LOOKING_SECRET,
        region_name="eu-west-1",
    )
    assert_refused(session.client("sts").get_caller_identity, host_suffix="sts.eu-west-1.amazonaws.com")
    assert_refused(session.client("s3").list_buckets, host_suffix="amazonaws.com")


def test_c_explicit_real_endpoint_is_refused(outside, start):
    s3 = boto3.client("s3", endpoint_url="https://s3.amazonaws.com")
    exc = assert_refused(s3.list_buckets, host_suffix="s3.amazonaws.com")
    assert exc.host == "s3.amazonaws.com"
    # Inside a sandbox the same AWS endpoint is answered by moto: still nothing leaves.
    sb = start()
    sb.client("s3").create_bucket(Bucket="inside-bucket")
    with net_watch() as seen:
        names = [b["Name"] for b in sb.client("s3", endpoint_url="https://s3.amazonaws.com").list_buckets()["Buckets"]]
    assert names == ["inside-bucket"]
    assert outbound(seen) == []


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_d_profile_and_real_keys_are_hidden_inside_and_refused_outside(outside, start, tmp_path, server):
    config = tmp_path / "config"
    config.write_text("[profile prod]\nregion = eu-central-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[prod]\naws_access_key_id = AKIAPRODPRODPRODPROD\naws_secret_access_key = {REAL_LOOKING_SECRET}\n"
    )
    outside.setenv("AWS_CONFIG_FILE", str(config))
    outside.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    outside.setenv("AWS_PROFILE", "prod")
    outside.setenv("AWS_DEFAULT_PROFILE", "prod")
    outside.delenv("AWS_ACCESS_KEY_ID")  # the keys come from the profile
    outside.delenv("AWS_SECRET_ACCESS_KEY")
    # A default session made from the real profile before the sandbox starts.
    before = boto3.client("s3")
    assert before._request_signer._credentials.access_key == "AKIAPRODPRODPRODPROD"
    assert_refused(before.list_buckets, host_suffix="amazonaws.com")

    sb = start(server=server)
    assert "AWS_PROFILE" not in os.environ and "AWS_DEFAULT_PROFILE" not in os.environ
    assert os.environ["AWS_CONFIG_FILE"] == os.devnull
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    for seen_by in (sb.session, boto3.Session(), boto3._get_default_session()):
        creds = seen_by.get_credentials().get_frozen_credentials()
        assert (creds.access_key, creds.secret_key) == ("testing", "testing")
    assert boto3.Session().region_name == "us-east-1"
    with net_watch() as seen:
        boto3.client("s3").create_bucket(Bucket="made-with-default-client")
        names = [b["Name"] for b in sb.client("s3").list_buckets()["Buckets"]]
    assert names == ["made-with-default-client"]  # it went to moto
    assert outbound(seen) == []
    sb.stop()

    # Outside again: the learner's profile is back, and refused.
    assert os.environ["AWS_PROFILE"] == "prod"
    after = boto3.client("s3")
    assert after._request_signer._credentials.access_key == "AKIAPRODPRODPRODPROD"
    assert_refused(after.list_buckets, host_suffix="amazonaws.com")


def test_e_non_aws_endpoint_is_refused_outside_and_inside(outside, start):
    assert_refused(
        boto3.client("s3", endpoint_url="https://example.com").list_buckets, host_suffix="example.com"
    )
    sb = start()  # moto only answers AWS hosts: example.com would really be contacted
    assert_refused(sb.client("s3", endpoint_url="https://example.com").list_buckets, host_suffix="example.com")
    assert_refused(sb.client("sqs", endpoint_url="http://10.1.2.3:4566").list_queues, host_suffix="10.1.2.3")
    sb.stop()
    srv = start(server=True)  # also with a server running
    assert_refused(srv.client("s3", endpoint_url="https://example.com").list_buckets, host_suffix="example.com")


def _our_wrappers(func) -> int:
    n = 0
    while func is not None:
        n += bool(getattr(func, awsguard.MARKER_ATTR, False))
        func = getattr(func, "__wrapped__", None)
    return n


def test_f_guard_survives_kernel_style_reimport(outside):
    awsguard.install()
    wrapped = URLLib3Session.send
    original = wrapped.__wrapped__
    assert _our_wrappers(wrapped) == 1 and _our_wrappers(original) == 0
    cls_before = awsguard.RealAWSBlocked

    # 1. importlib.reload
    reloaded = importlib.reload(awsguard)
    assert reloaded.installed()
    assert reloaded.install() is False  # nothing to do
    assert URLLib3Session.send is wrapped
    assert reloaded.RealAWSBlocked is cls_before  # `except RealAWSBlocked` keeps working
    assert_refused(boto3.client("s3").list_buckets, host_suffix="amazonaws.com")

    # 2. delete every coursekit* module and import again, as a restarted import would
    saved = {k: m for k, m in sys.modules.items() if k == "coursekit" or k.startswith("coursekit.")}
    try:
        for k in saved:
            del sys.modules[k]
        fresh = importlib.import_module("coursekit.aws.guard")
        assert fresh is not awsguard
        assert fresh.installed()
        assert fresh.install() is False
        fresh.install()
        assert URLLib3Session.send is wrapped
        assert _our_wrappers(URLLib3Session.send) == 1
        assert URLLib3Session.send.__wrapped__ is original
        # It still blocks, raising the class the learner's re-imported code knows.
        with pytest.raises(fresh.RealAWSBlocked) as info:
            boto3.client("s3").list_buckets()
        fresh_errors = sys.modules["coursekit.errors"]
        assert isinstance(info.value, fresh_errors.AWSSandboxError)
        # State is shared, not per module: mode and record list are the same.
        fresh.set_mode("record")
        assert awsguard.mode() == "record"
        with pytest.raises(fresh.RealAWSBlocked):
            boto3.client("s3", endpoint_url="https://example.com").list_buckets()
        assert [a.host for a in awsguard.recorded()] == ["example.com"]
        fresh.set_mode("block")
        fresh.clear_recorded()
        # A sandbox started by the old module is known to the re-imported one.
        sb = aws.sandbox()
        try:
            fresh_aws = importlib.import_module("coursekit.aws")
            assert fresh_aws is not aws
            assert fresh_aws.active() is sb
            with pytest.raises(fresh_errors.AWSSandboxError, match="already running"):
                fresh_aws.sandbox()
            assert fresh_aws.stop() is True
        finally:
            sb.stop()
    finally:
        for k in [k for k in sys.modules if k == "coursekit" or k.startswith("coursekit.")]:
            del sys.modules[k]
        sys.modules.update(saved)
        awsguard.set_mode("block")
        awsguard.clear_recorded()
    assert URLLib3Session.send is wrapped


# --------------------------------------------------------------------- the guard's own rules
@pytest.mark.parametrize(
    "host, ok",
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.example.com", False),
        ("s3.amazonaws.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_rule(host, ok):
    assert awsguard.is_loopback_host(host) is ok


def test_unknown_mode_is_a_coursekit_error():
    with pytest.raises(AWSSandboxError, match="unknown AWS guard mode"):
        awsguard.set_mode("allow")
    assert awsguard.mode() == "block"


def test_import_coursekit_aws_is_light():
    code = "import sys, coursekit.aws, coursekit.aws.guard; print(sorted({'boto3','botocore','moto'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------- the sandbox itself
def test_s3_create_put_get_in_process(start):
    sb = start()
    assert sb.mode == "in-process" and sb.endpoint_url is None and sb.region == "us-east-1"
    s3 = sb.client("s3")
    assert sb.client("s3") is s3  # cached
    assert sb.session is sb.session
    s3.create_bucket(Bucket="lesson-bucket")
    s3.put_object(Bucket="lesson-bucket", Key="hello.txt", Body=b"hello, moto")
    assert s3.get_object(Bucket="lesson-bucket", Key="hello.txt")["Body"].read() == b"hello, moto"
    bucket = sb.resource("s3").Bucket("lesson-bucket")
    assert [o.key for o in bucket.objects.all()] == ["hello.txt"]


def test_other_region(start):
    sb = start("eu-west-1")
    assert os.environ["AWS_DEFAULT_REGION"] == os.environ["AWS_REGION"] == "eu-west-1"
    sqs = sb.client("sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    assert "eu-west-1" in url or "jobs" in url
    assert boto3.client("sqs").meta.region_name == "eu-west-1"


def test_mocked_calls_never_reach_the_guard(start):
    sb = start()
    awsguard.set_mode("record")
    try:
        awsguard.clear_recorded()
        sb.client("s3").create_bucket(Bucket="answered-by-moto")
        sb.client("s3").list_buckets()
        assert awsguard.recorded() == []  # moto answered from before-send
    finally:
        awsguard.set_mode("block")


def test_server_mode_over_http(start):
    sb = start(server=True)
    assert sb.mode == "server"
    assert sb.endpoint_url == f"http://127.0.0.1:{sb.port}"
    assert os.environ["AWS_ENDPOINT_URL"] == sb.endpoint_url
    s3 = sb.client("s3")
    assert s3.meta.endpoint_url == sb.endpoint_url
    s3.create_bucket(Bucket="served-bucket")
    s3.put_object(Bucket="served-bucket", Key="k.txt", Body=b"over http", ACL="public-read")
    s3.put_object(Bucket="served-bucket", Key="private.txt", Body=b"secret")
    # Plain HTTP, no boto3: requests and urllib reach the same server.
    r = requests.get(f"{sb.endpoint_url}/served-bucket/k.txt", timeout=10)
    assert r.status_code == 200 and r.content == b"over http"
    # moto applies object ACLs to anonymous requests, as S3 does
    assert requests.get(f"{sb.endpoint_url}/served-bucket/private.txt", timeout=10).status_code == 403
    assert requests.put(f"{sb.endpoint_url}/made-by-requests", timeout=10).status_code == 200
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{sb.endpoint_url}/served-bucket/k.txt", timeout=10) as resp:
        assert resp.read() == b"over http"
    names = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    assert names == ["made-by-requests", "served-bucket"]
    # Another process, with only the environment the sandbox set.
    child = subprocess.run(
        [sys.executable, "-c", "import boto3; print(sorted(b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']))"],
        capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "['made-by-requests', 'served-bucket']"


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if len(addr_hex) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr_hex)[::-1]))
                else:
                    raw = bytes.fromhex(addr_hex)
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def test_server_binds_loopback_only_and_closes_on_stop(start):
    sb = start(server=True)
    port = sb.port
    sock = sb._moto_server._server.socket
    assert sock.getsockname()[0] == "127.0.0.1"
    if os.path.exists("/proc/net/tcp"):
        assert _listening_addresses(port) == {"127.0.0.1"}
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    t0 = time.perf_counter()
    sb.stop()
    assert time.perf_counter() - t0 < 2
    assert not sb.active and aws.active() is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    if os.path.exists("/proc/net/tcp"):
        assert _listening_addresses(port) == set()
    with pytest.raises(AWSSandboxError, match="stopped"):
        sb.client("s3")
    sb.stop()  # idempotent


def test_record_mode_records_loopback_requests_in_server_mode(start):
    sb = start(server=True)
    awsguard.set_mode("record")
    try:
        awsguard.clear_recorded()
        s3 = sb.client("s3")
        s3.create_bucket(Bucket="recorded-bucket")
        s3.list_buckets()
        with pytest.raises(RealAWSBlocked):
            sb.client("s3", endpoint_url="https://s3.amazonaws.com").list_buckets()
        seen = awsguard.recorded()
    finally:
        awsguard.set_mode("block")
    allowed = [a for a in seen if not a.blocked]
    assert [(a.method, a.url) for a in allowed] == [
        ("PUT", f"{sb.endpoint_url}/recorded-bucket"),
        ("GET", f"{sb.endpoint_url}/"),
    ]
    assert all(a.host == "127.0.0.1" for a in allowed)
    blocked = [a for a in seen if a.blocked]
    assert [(a.method, a.host) for a in blocked] == [("GET", "s3.amazonaws.com")]
    # block mode records nothing
    awsguard.clear_recorded()
    s3.list_buckets()
    assert awsguard.recorded() == []


def test_iam_enforcement_gives_real_access_denied(start):
    from moto import settings as moto_settings

    before = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    sb = start(iam=True)
    assert sb.credentials["AWS_ACCESS_KEY_ID"].startswith("AKIA")
    assert os.environ["AWS_ACCESS_KEY_ID"] == sb.credentials["AWS_ACCESS_KEY_ID"]
    assert "AWS_SESSION_TOKEN" not in os.environ
    assert sb.client("sts").get_caller_identity()["Arn"].endswith(f"user/{aws.ADMIN_USER}")
    sb.client("s3").create_bucket(Bucket="admins-bucket")
    iam = sb.client("iam")
    iam.create_user(UserName="student")
    key = iam.create_access_key(UserName="student")["AccessKey"]
    student = boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=sb.region
    )
    with pytest.raises(ClientError) as info:
        student.client("s3").list_buckets()
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    # Unknown keys are refused too, as AWS does.
    with pytest.raises(ClientError) as info:
        boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=sb.region).client(
            "s3"
        ).list_buckets()
    assert info.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "InvalidClientTokenId")
    # Grant exactly one action: that one passes, the next is still denied.
    iam.put_user_policy(
        UserName="student",
        PolicyName="list-only",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}',
    )
    s3_student = student.client("s3")
    assert [b["Name"] for b in s3_student.list_buckets()["Buckets"]] == ["admins-bucket"]
    with pytest.raises(ClientError) as info:
        s3_student.create_bucket(Bucket="students-bucket")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    # reset() keeps the sandbox usable: a new admin, an empty account.
    sb.reset()
    assert sb.client("s3").list_buckets()["Buckets"] == []
    sb.stop()
    assert moto_settings.INITIAL_NO_AUTH_ACTION_COUNT == before  # enforcement off again


def test_iam_enforcement_in_server_mode(start):
    sb = start(server=True, iam=True)
    sb.client("s3").create_bucket(Bucket="admins-bucket")
    iam = sb.client("iam")
    iam.create_user(UserName="student")
    key = iam.create_access_key(UserName="student")["AccessKey"]
    student = boto3.client(
        "s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )
    assert student.meta.endpoint_url == sb.endpoint_url  # AWS_ENDPOINT_URL
    with pytest.raises(ClientError) as info:
        student.list_buckets()
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_env_restored_after_stop(monkeypatch, start, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", REAL_LOOKING_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", REAL_LOOKING_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "")  # empty, not absent: must come back as ""
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # a learner behind a proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "intranet.example")
    before = dict(os.environ)

    for kw in ({}, {"server": True}, {"iam": True}, {"validate_ec2": True}):
        sb = start(**kw)
        assert os.environ["AWS_ACCESS_KEY_ID"] != REAL_LOOKING_KEY
        assert "AWS_PROFILE" not in os.environ
        assert os.environ["AWS_REGION"] == "us-east-1"
        assert "127.0.0.1" in os.environ["NO_PROXY"] and "intranet.example" in os.environ["no_proxy"]
        if kw.get("server"):
            # the loopback server is reached directly, not through the proxy
            assert sb.client("s3").list_buckets()["Buckets"] == []
        sb.stop()
        assert dict(os.environ) == before, kw

    # also when the with-block raises
    with pytest.raises(ZeroDivisionError):
        with aws.sandbox():
            1 / 0
    assert dict(os.environ) == before
    assert aws.active() is None


def test_guard_refuses_loopback_through_a_remote_proxy(start):
    sb = start(server=True)
    cli = sb.client("s3", config=Config(proxies={"http": "http://proxy.invalid:3128"}))
    with pytest.raises(RealAWSBlocked, match="proxy"):
        cli.list_buckets()


def test_second_sandbox_is_a_clear_error(start):
    first = start()
    with pytest.raises(AWSSandboxError, match="already running") as info:
        aws.sandbox(server=True)
    assert "coursekit.aws.stop()" in str(info.value)
    assert aws.active() is first
    first.client("s3").create_bucket(Bucket="still-works")
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert aws.stop() is True and aws.stop() is False
    second = start(server=True)
    assert aws.active() is second


def test_notebook_style_sandbox_is_stopped_at_exit(tmp_path):
    # No `with`, no stop(): interpreter exit stops it (the server thread must not hang).
    code = textwrap.dedent(
        """
        import coursekit.aws as aws
        sb = aws.sandbox(server=True)
        sb.client("s3").create_bucket(Bucket="left-running")
        print(sb.port)
        """
    )
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert time.perf_counter() - t0 < 30
    port = int(child.stdout.strip())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_reset_wipes_state(start, server):
    sb = start(server=server)
    sb.client("s3").create_bucket(Bucket="to-be-wiped")
    sb.client("sqs").create_queue(QueueName="to-be-wiped")
    aws.reset()
    assert sb.client("s3").list_buckets()["Buckets"] == []
    assert sb.client("sqs").list_queues().get("QueueUrls", []) == []


def test_reset_without_sandbox_is_a_clear_error():
    with pytest.raises(AWSSandboxError, match="no AWS sandbox"):
        aws.reset()


def test_each_sandbox_starts_empty(start):
    sb = start(server=True)
    sb.client("s3").create_bucket(Bucket="from-the-first")
    sb.stop()
    sb = start()
    assert sb.client("s3").list_buckets()["Buckets"] == []
    sb.client("s3").create_bucket(Bucket="from-the-second")
    sb.stop()
    sb = start(server=True)
    assert sb.client("s3").list_buckets()["Buckets"] == []


def test_validate_ec2_rejects_unknown_ami_while_active(start):
    from moto import settings as moto_settings

    sb = start(validate_ec2=True)
    assert os.environ["MOTO_ENABLE_AMI_VALIDATION"] == "true"
    with pytest.raises(ClientError) as info:
        sb.client("ec2").run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1)
    assert info.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    sb.stop()
    assert moto_settings.ENABLE_AMI_VALIDATION is False
    assert moto_settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION is False


def test_a_stopped_sandbox_can_be_started_again():
    sb = aws.Sandbox(server=True, iam=True)
    for _ in range(2):
        with sb:
            assert sb.active and aws.active() is sb
            assert sb.client("sts").get_caller_identity()["Arn"].endswith(f"user/{aws.ADMIN_USER}")
            port = sb.port
        assert not sb.active and aws.active() is None
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
