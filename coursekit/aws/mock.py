"""Safe AWS for a notebook, in one call: ``sb = coursekit.aws.sandbox()``.

Every AWS lesson runs against `moto <https://docs.getmoto.org>`_, a fake of the AWS APIs,
never against real AWS. :func:`sandbox` sets that up and makes it hard to get wrong:

* it installs :mod:`coursekit.aws.guard`, which refuses (before any connection) every
  botocore request to a host that is not this machine, so stray clients, real
  ``endpoint_url`` values and the instance-metadata service all fail loudly with
  :class:`~coursekit.aws.guard.RealAWSBlocked`;
* it replaces the credentials botocore would find with fake ones
  (``AWS_ACCESS_KEY_ID=testing`` ...), hides ``AWS_PROFILE``/``AWS_DEFAULT_PROFILE`` and
  points ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE`` at ``os.devnull`` (so the
  learner's ``~/.aws`` is ignored), sets ``AWS_DEFAULT_REGION``/``AWS_REGION``, and makes
  ``boto3``'s default session a fresh one built from those; everything is put back on
  :meth:`Sandbox.stop`;
* in-process mode (default) starts moto's ``mock_aws()``; ``server=True`` starts moto's
  ``ThreadedMotoServer`` on ``127.0.0.1`` (a free port) so that another process (a
  subprocess, the AWS CLI, a container with ``--network host``) can reach it at
  :attr:`Sandbox.endpoint_url`; ``AWS_ENDPOINT_URL`` is set to it while it runs, so plain
  ``boto3.client("s3")`` and child processes go there too.

Use it as a context manager, or notebook-style without ``with`` (then it stays active
until :meth:`Sandbox.stop`, :func:`stop`, or interpreter exit)::

    with coursekit.aws.sandbox() as sb:
        s3 = sb.client("s3")
        s3.create_bucket(Bucket="lesson-bucket")

One sandbox at a time: starting a second one while one is active raises
:class:`~coursekit.errors.AWSSandboxError` saying how to reuse or stop the first (nesting
would let an inner ``stop()`` restore the environment under the outer one). The active
sandbox is remembered on the botocore class (like the guard), so re-importing coursekit
in a running kernel does not lose track of it.

What moto fakes well, and what it does not (moto 5.2; teach the first, label the second):

* Real enough to teach: S3 CRUD, versioning, bucket-policy Deny; IAM policy grammar; with
  ``iam=True``, IAM enforcement gives a real ``AccessDenied`` to a user without permission;
  SQS, SNS, DynamoDB, KMS, CloudWatch metrics.
* Fake, not to be taught as real: CodeBuild and CodePipeline run nothing (builds report
  SUCCEEDED whatever the buildspec says); EKS has no Kubernetes API; Lambda invoke needs
  images pulled from a registry (none here); Athena runs no SQL; presigned URLs are not
  checked for expiry or signature (and crash the server with IAM enforcement on);
  ``simulate_principal_policy`` is missing; AWS-managed policies are not loaded by
  default; invalid AMIs and instance types are accepted unless ``validate_ec2=True``.

Costs (measured, see tests): first S3 call 0.2-0.5 s, first EC2 ``run_instances`` 2-3 s.
Creating a client costs 0.2-0.3 s, so :meth:`Sandbox.client` caches them.

``iam=True`` turns on moto's IAM enforcement. Every request must then be signed by a
known IAM user with a policy that allows it, so the sandbox first creates an
administrator, ``coursekit-admin`` (inline policy: Allow ``*`` on ``*``), and uses its
keys for :attr:`Sandbox.session`, its clients and the environment. Learners create less
privileged users themselves and see ``AccessDenied``. :meth:`Sandbox.reset` re-creates
the administrator with new keys: make clients again after a reset in this mode.

What the guard covers: botocore (boto3, and anything built on it) in this process. It
does not see ``requests``/``urllib`` or a child process such as the AWS CLI v2: in
in-process mode a child process would get the fake keys but real AWS endpoints, so give
child processes ``server=True`` (they inherit ``AWS_ENDPOINT_URL``).

Clients made *before* moto was first imported (before the first sandbox) are not
answered by the in-process mock; the guard refuses them and says so. Make clients after
``sandbox()``, preferably with :meth:`Sandbox.client`.

Lessons: every AWS lesson (``09-cloud-computing`` to ``12-iam``, and ``13-capstone``); ``server=True`` where another process or the
AWS CLI talks to the fake.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from typing import Any

from . import guard
from ..errors import AWSSandboxError

DEFAULT_REGION = "us-east-1"

#: What the sandbox puts in os.environ while active (in-process and server mode).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}

#: Removed from os.environ while active.
HIDDEN_VARS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")

#: Every variable the sandbox may touch; their previous values are restored on stop.
MANAGED_VARS = (
    *FAKE_CREDENTIALS,
    *HIDDEN_VARS,
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "MOTO_ENABLE_AMI_VALIDATION",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
    "NO_PROXY",
    "no_proxy",
)

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1")

ADMIN_USER = "coursekit-admin"
_ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'

_local_lock = threading.RLock()


def _shared() -> dict[str, Any]:
    return guard.shared_state()


def _lock() -> Any:
    """The lock around starting and stopping sandboxes (kept with the guard's state, so a
    re-imported coursekit.aws uses the same one)."""
    try:
        shared = _shared()
    except Exception:  # pragma: no cover - botocore missing
        return _local_lock
    lock = shared.get("sandbox_lock")
    if lock is None:
        lock = shared.setdefault("sandbox_lock", threading.RLock())
    return lock


def active() -> "Sandbox | None":
    """The sandbox currently running in this process, or None."""
    import sys

    if "botocore.httpsession" not in sys.modules:
        return None
    sb = _shared().get("sandbox")
    return sb if sb is not None and getattr(sb, "active", False) else None


def stop() -> bool:
    """Stop the active sandbox, if any. Returns True if one was stopped."""
    sb = active()
    if sb is None:
        return False
    sb.stop()
    return True


def reset() -> None:
    """Wipe every fake resource (buckets, users, queues ...) of the active sandbox."""
    sb = active()
    if sb is None:
        raise AWSSandboxError(
            "there is no AWS sandbox to reset",
            fix="start one first: `sb = coursekit.aws.sandbox()`",
        )
    sb.reset()


def sandbox(
    region: str = DEFAULT_REGION,
    *,
    server: bool = False,
    iam: bool = False,
    validate_ec2: bool = False,
) -> "Sandbox":
    """Start a moto sandbox and return it (already started).

    ``server=True``: a moto server on ``127.0.0.1`` reachable by other processes (see
    :attr:`Sandbox.endpoint_url`). ``iam=True``: moto enforces IAM policies (the sandbox
    acts as ``coursekit-admin``). ``validate_ec2=True``: moto rejects unknown AMIs and
    instance types (``MOTO_ENABLE_AMI_VALIDATION``,
    ``MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION``), as AWS does.
    """
    return Sandbox(region, server=server, iam=iam, validate_ec2=validate_ec2).start()


class Sandbox:
    """A running moto sandbox: fake credentials, a guard, and moto (in-process or server).

    Make it with :func:`sandbox`. Usable with ``with`` or without (then call
    :meth:`stop`, or let interpreter exit do it).
    """

    def __init__(
        self,
        region: str = DEFAULT_REGION,
        *,
        server: bool = False,
        iam: bool = False,
        validate_ec2: bool = False,
    ):
        if not isinstance(region, str) or not region:
            raise AWSSandboxError(f"not a region: {region!r}", fix='pass e.g. region="us-east-1"')
        self.region = region
        self.server = bool(server)
        self.iam = bool(iam)
        self.validate_ec2 = bool(validate_ec2)
        self.mode = "server" if self.server else "in-process"
        self.endpoint_url: str | None = None
        self.port: int | None = None
        self.started_at: float | None = None
        self._stack: contextlib.ExitStack | None = None
        self._session = None
        self._clients: dict[Any, Any] = {}
        self._resources: dict[Any, Any] = {}
        self._credentials = dict(FAKE_CREDENTIALS)
        self._moto_server = None
        self._atexit_registered = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def active(self) -> bool:
        return self._stack is not None

    def start(self) -> "Sandbox":
        """Start (used by :func:`sandbox`). Raises AWSSandboxError if another is active."""
        with _lock():
            if self.active:
                return self
            other = active()
            if other is not None:
                raise AWSSandboxError(
                    f"an AWS sandbox is already running ({other.mode}, {other.region}"
                    f"{', ' + other.endpoint_url if other.endpoint_url else ''}), "
                    "perhaps from an earlier cell",
                    fix="reuse it (`sb = coursekit.aws.active()`) or stop it first "
                    "(`coursekit.aws.stop()`), then start a new one",
                )
            stack = contextlib.ExitStack()
            try:
                self._start(stack)
            except BaseException as exc:
                stack.close()
                self._clients.clear()
                self._resources.clear()
                self._session = None
                if isinstance(exc, AWSSandboxError) or not isinstance(exc, Exception):
                    raise
                raise AWSSandboxError(
                    f"the AWS sandbox could not start: {type(exc).__name__}: {exc}",
                    fix="run `coursekit doctor`, and ask for help with the message above",
                ) from exc
            self._stack = stack
            self.started_at = time.time()
            _shared()["sandbox"] = self
            if not self._atexit_registered:
                atexit.register(self._atexit_stop)
                self._atexit_registered = True
            return self

    def _start(self, stack: contextlib.ExitStack) -> None:
        self.endpoint_url = None
        self.port = None
        self._credentials = dict(FAKE_CREDENTIALS)
        guard.install()

        # Remember the environment first: this callback runs last on stop.
        saved_env = {k: os.environ.get(k) for k in MANAGED_VARS}
        stack.callback(_restore_env, saved_env)

        import boto3

        saved_default_session = boto3.DEFAULT_SESSION
        stack.callback(setattr, boto3, "DEFAULT_SESSION", saved_default_session)

        if self.server:
            self._start_server(stack)
        else:
            from moto import mock_aws

            mock = mock_aws()
            # moto puts FOOBARKEY credentials in os.environ on start and on stop puts back
            # (or deletes) what it saw: start it before we set ours, stop it before we
            # restore. It also resets its backends: a fresh, empty account.
            mock.start()
            stack.callback(self._stop_mock, mock)

        self._apply_env()

        if self.validate_ec2:
            from moto import settings as moto_settings

            for attr in ("ENABLE_AMI_VALIDATION", "EC2_ENABLE_INSTANCE_TYPE_VALIDATION"):
                stack.callback(setattr, moto_settings, attr, getattr(moto_settings, attr))
                # moto reads the env vars once, at import: set the settings too.
                setattr(moto_settings, attr, True)
            os.environ["MOTO_ENABLE_AMI_VALIDATION"] = "true"
            os.environ["MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION"] = "true"

        if self.iam:
            from moto.core import enable_iam_authentication

            stack.enter_context(enable_iam_authentication())
            self._make_admin()

        self._new_session()

    def _start_server(self, stack: contextlib.ExitStack) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # flask / flask-cors missing
            raise AWSSandboxError(
                f"moto's server mode is not installed ({exc})",
                fix="pip install 'moto[server]'",
            ) from exc
        # The threaded server shares this process's moto state: start from an empty one.
        _reset_backends()
        wlog = logging.getLogger("werkzeug")
        if wlog.level == logging.NOTSET or wlog.level < logging.WARNING:
            # werkzeug prints one line per request unless its logger is configured.
            stack.callback(wlog.setLevel, wlog.level)
            wlog.setLevel(logging.WARNING)
        srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        srv.start()
        stack.callback(self._stop_server, srv)
        self._moto_server = srv
        host, port = srv.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.port = port

    @staticmethod
    def _stop_server(srv: Any) -> None:
        # ThreadedMotoServer.stop() waits for werkzeug's serve_forever loop, which looks
        # at its shutdown flag only every 0.5 s or when a connection arrives: poke it with
        # empty loopback connections so that stop() takes milliseconds, not half a second.
        import socket

        host, port = srv.get_host_and_port()
        done = threading.Event()

        def poke() -> None:
            while not done.wait(0.01):
                with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
                    pass

        poker = threading.Thread(target=poke, name="coursekit-moto-stop", daemon=True)
        poker.start()
        try:
            srv.stop()  # werkzeug's serve_forever closes the listening socket on the way out
        finally:
            done.set()
            poker.join(timeout=2)
        inner = getattr(srv, "_server", None)
        if inner is not None:
            with contextlib.suppress(Exception):
                inner.server_close()

    @staticmethod
    def _stop_mock(mock: Any) -> None:
        # moto's stop deletes the credential variables it set: make sure they exist.
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(key, "testing")
        mock.stop()

    def _apply_env(self) -> None:
        env = os.environ
        for key in HIDDEN_VARS:
            env.pop(key, None)
        for key in FAKE_CREDENTIALS:
            value = self._credentials.get(key)
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env["AWS_DEFAULT_REGION"] = self.region
        env["AWS_REGION"] = self.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        else:
            env.pop("AWS_ENDPOINT_URL", None)
        if any(env.get(k) for k in _PROXY_VARS):
            for key in ("NO_PROXY", "no_proxy"):
                parts = [p.strip() for p in env.get(key, "").split(",") if p.strip()]
                parts += [h for h in _LOOPBACK_NO_PROXY if h not in parts]
                env[key] = ",".join(parts)

    def _make_admin(self) -> None:
        """With IAM enforced, create an administrator and act as it."""
        import boto3
        from moto.core import disable_iam_authentication

        with disable_iam_authentication():
            boot = boto3.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name=self.region,
            )
            iam = boot.client("iam", endpoint_url=self.endpoint_url)
            iam.create_user(UserName=ADMIN_USER)
            iam.put_user_policy(UserName=ADMIN_USER, PolicyName="admin", PolicyDocument=_ADMIN_POLICY)
            key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self._credentials = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_SESSION_TOKEN": None,
            "AWS_SECURITY_TOKEN": None,
        }
        self._apply_env()

    def _new_session(self) -> None:
        import boto3

        self._clients.clear()
        self._resources.clear()
        self._session = boto3.Session(
            aws_access_key_id=self._credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self._credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=self._credentials.get("AWS_SESSION_TOKEN"),
            region_name=self.region,
        )
        # Plain boto3.client(...) inside the sandbox uses this session, not one made
        # earlier from the learner's profile.
        boto3.DEFAULT_SESSION = self._session

    def stop(self) -> None:
        """Stop moto, and put back the environment and boto3's default session. Idempotent."""
        with _lock():
            stack, self._stack = self._stack, None
            if stack is None:
                return
            try:
                stack.close()
            finally:
                self._clients.clear()
                self._resources.clear()
                self._moto_server = None
                shared = _shared()
                if shared.get("sandbox") is self:
                    shared["sandbox"] = None
                if self._atexit_registered:
                    with contextlib.suppress(Exception):
                        atexit.unregister(self._atexit_stop)
                    self._atexit_registered = False

    def _atexit_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        iam = ", iam" if self.iam else ""
        return f"<coursekit.aws.Sandbox {self.mode}{where}, {self.region}{iam}, {state}>"

    # ------------------------------------------------------------------ use
    def _require_active(self) -> None:
        if not self.active:
            raise AWSSandboxError(
                "this AWS sandbox is stopped",
                fix="start a new one: `sb = coursekit.aws.sandbox()`",
            )

    @property
    def session(self):
        """A ``boto3.Session`` with the sandbox's credentials and region (reused)."""
        self._require_active()
        return self._session

    @property
    def credentials(self) -> dict[str, str | None]:
        """The fake credentials in use (the admin's keys when ``iam=True``)."""
        return dict(self._credentials)

    def client(self, service: str, **kw: Any):
        """A boto3 client for ``service``, cached per service and keyword arguments."""
        return self._cached("client", self._clients, service, kw)

    def resource(self, service: str, **kw: Any):
        """A boto3 resource (``s3``, ``dynamodb`` ...), cached like :meth:`client`."""
        return self._cached("resource", self._resources, service, kw)

    def _cached(self, kind: str, cache: dict, service: str, kw: dict):
        self._require_active()
        if self.endpoint_url:
            kw.setdefault("endpoint_url", self.endpoint_url)
        make = getattr(self._session, kind)
        key = _cache_key(service, kw)
        if key is None:
            return make(service, **kw)
        with _lock():
            obj = cache.get(key)
            if obj is None:
                obj = cache[key] = make(service, **kw)
            return obj

    def reset(self) -> None:
        """Wipe moto's state: every bucket, user, queue ... is gone.

        In-process: moto's backend reset. Server: ``POST /moto-api/reset`` (what any other
        process would call). With ``iam=True`` the administrator is re-created, with new
        keys (the session and cached clients are replaced).
        """
        self._require_active()
        if self.endpoint_url:
            import json
            import urllib.request

            req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
            with opener.open(req, timeout=30) as resp:
                body = json.loads(resp.read() or b"{}")
            if body.get("status") != "ok":  # pragma: no cover
                raise AWSSandboxError(f"moto did not reset: {body}")
        else:
            _reset_backends()
        if self.iam:
            self._make_admin()
            self._new_session()


def _reset_backends() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def _cache_key(service: str, kw: dict[str, Any]) -> Any:
    try:
        key = (service, tuple(sorted(kw.items())))
        hash(key)
        return key
    except TypeError:
        return None


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


__all__ = ["sandbox", "Sandbox", "active", "stop", "reset", "DEFAULT_REGION", "FAKE_CREDENTIALS"]
