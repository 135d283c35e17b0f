"""Which statement allows or denies a call (AWS's documented evaluation rules), and a call
tried for real with someone's keys (see :mod:`coursekit.aws.iam`).

Lesson: ``12-iam`` (through :mod:`coursekit.aws.iam`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..services import action_name
from .grammar import check, text_of
from .jsonlines import parse


def action_for(service: str, operation: str) -> str:
    """The IAM action a boto3 call needs: ``action_for("s3", "ListObjectsV2")`` is ``"s3:ListBucket"``."""
    return f"{service}:{action_name(service, operation)}"


#: Error codes that mean "not authorised", or keys that are not accepted (any other error
#: came after the permission check, so the call itself was allowed).
DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403", "InvalidAccessKeyId",
                "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken")


@dataclass
class Attempt:
    """One call made by :func:`attempt`: the IAM action it needs and what AWS (moto) answered."""

    call: str
    action: str
    allowed: bool
    code: str = ""
    message: str = ""

    def __str__(self) -> str:
        said = "allowed" if self.allowed and not self.code else \
            f"allowed (then {self.code})" if self.allowed else f"DENIED ({self.code})"
        return f"{self.call:<60} {self.action:<20} {said}"


def attempt(client: Any, method: str, **params: Any) -> Attempt:
    """Call ``client.<method>(**params)``; report the IAM action and whether it was allowed."""
    from botocore.exceptions import ClientError

    operation = client.meta.method_to_api_mapping.get(method, method)
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if k in ("Bucket", "Key", "Prefix", "UserName", "RoleSessionName"))
    call = f"{client.meta.service_model.endpoint_prefix}.{method}({shown})"
    action = action_for(client.meta.service_model.endpoint_prefix, operation)
    try:
        getattr(client, method)(**params)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        return Attempt(call, action, code not in DENIED_CODES, code, str(err.get("Message", "")))
    return Attempt(call, action, True)


_LOADER = None


def session_for(credentials: dict, sandbox: Any = None) -> Any:
    """A ``boto3.Session`` that signs with ``credentials``: a user's access key (what
    ``create_access_key`` returns under ``"AccessKey"``) or a role's temporary ones (``assume_role``'s
    ``"Credentials"``), in the region of ``sandbox`` (default: the active one). The API models are
    loaded once per process, so each client costs milliseconds instead of a tenth of a second."""
    import boto3
    import botocore.loaders
    import botocore.session

    from ... import aws

    global _LOADER
    sb = sandbox or aws.active()
    core = botocore.session.Session()
    _LOADER = _LOADER or botocore.loaders.create_loader()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                         aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials.get("SessionToken"),
                         region_name=sb.region if sb is not None else None, botocore_session=core)


def _listed(statement: dict, key: str) -> list[str]:
    """The values of Action/NotAction (or Resource/NotResource) as a list."""
    value = statement.get(key, statement.get(f"Not{key}", []))
    return [value] if isinstance(value, str) else list(value)


def _matches(pattern: str, value: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


@dataclass
class Decision:
    """What AWS's rules say about one call: ``allowed``, and ``reason`` in words."""

    allowed: bool
    reason: str

    def __str__(self) -> str:
        return f"{'ALLOWED' if self.allowed else 'DENIED'}: {self.reason}"

    def __bool__(self) -> bool:
        return self.allowed


def decide(documents: Any, action: str, resource: str = "*") -> Decision:
    """Apply the documented rules to one call: an explicit Deny wins, else an Allow, else denied.

    ``documents``: one policy or a list (a user's own and its groups' policies together).
    Conditions are not evaluated: a matching statement with a Condition is said to apply "if
    its Condition holds". Policy variables such as ``${aws:username}`` are not substituted.
    """
    docs = documents if isinstance(documents, list) else [documents]
    allow = None
    for p, doc in enumerate(docs, 1):
        text = text_of(doc)
        check(text, kind="identity")
        root, _ = parse(text)
        stmts = next(n for k, _, n in root.items if k == "Statement")
        for i, stmt in enumerate(stmts.items if isinstance(stmts.value, list) else [stmts], 1):
            s = stmt.value
            hit = any(_matches(a, action, ignore_case=True) for a in _listed(s, "Action"))
            rhit = any(_matches(r, resource, ignore_case=False) for r in _listed(s, "Resource"))
            if ("NotAction" in s) == hit or ("NotResource" in s) == rhit:
                continue
            where = f"policy {p}, statement {i} (line {stmt.line})" if len(docs) > 1 else \
                f"statement {i} (line {stmt.line})"
            cond = ", if its Condition holds (not checked here)" if "Condition" in s else ""
            if s["Effect"] == "Deny":
                return Decision(False, f"{where} denies {action} on {resource}{cond}; an explicit Deny "
                                "overrides every Allow")
            allow = allow or f"{where} allows {action} on {resource}{cond}"
    if allow:
        return Decision(True, allow)
    return Decision(False, f"no statement allows {action} on {resource}, so it is denied by default "
                    "(an implicit deny)")
