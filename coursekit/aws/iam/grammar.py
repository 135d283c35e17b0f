"""The grammar of IAM policy documents: every problem of a policy, with its line (see
:mod:`coursekit.aws.iam`, which gathers the public names).

Lesson: ``12-iam`` (through :mod:`coursekit.aws.iam`).
"""
from __future__ import annotations

import difflib
import json
import re
from typing import Any

from ...errors import CoursekitError
from ..errors import AWSError
from .jsonlines import Problem, Node, parse

VERSION = "2012-10-17"
TOP_KEYS = ("Version", "Id", "Statement")
STATEMENT_KEYS = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                  "Resource", "NotResource", "Condition")
KINDS = ("identity", "trust", "resource")
_OPERATORS = ("StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
              "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
              "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals",
              "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
              "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals",
              "ArnLike", "ArnNotEquals", "ArnNotLike", "Null")
_ACTION_RE = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9*?]+$")
#: Plain words for the actions the lessons use (others are described from their name).
ACTIONS = {
    "s3:GetObject": "read objects", "s3:PutObject": "write objects (upload or overwrite)",
    "s3:DeleteObject": "delete objects", "s3:ListBucket": "list the keys in a bucket",
    "s3:ListAllMyBuckets": "list every bucket of the account", "s3:CreateBucket": "create buckets",
    "s3:DeleteBucket": "delete buckets", "sts:AssumeRole": "take on a role and get its temporary keys",
    "iam:CreateUser": "create IAM users", "iam:ListUsers": "list IAM users",
    "iam:PassRole": "hand a role to a service", "ec2:RunInstances": "start EC2 instances",
    "ec2:DescribeInstances": "look at EC2 instances", "ec2:TerminateInstances": "terminate EC2 instances",
}


class PolicyError(CoursekitError):
    """A policy document with problems; ``.problems`` lists them, each with its line."""

    def __init__(self, found: list[Problem], text: str):
        self.problems, self.text = found, text
        head = found[0]
        more = "".join(f"\n  {p}" for p in found[1:])
        super().__init__(f"this policy has {len(found)} problem{'s' * (len(found) > 1)}:\n  {head}{more}"
                         f"\n{_snippet(text, head.line)}", fix=head.fix)



def dumps(document: Any) -> str:
    """The JSON text :func:`check` numbers a dict by (two-space indent)."""
    return json.dumps(document, indent=2)


def text_of(document: Any) -> str:
    if isinstance(document, (bytes, bytearray)):
        document = document.decode("utf-8")
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        return dumps(document)
    raise PolicyError([Problem(1, f"a policy is JSON text or a dict, not a {type(document).__name__}",
                               "pass the policy as a JSON string or a Python dict")], "")


# --------------------------------------------------------------------------- the grammar
def _guess(key: str, allowed: tuple) -> str | None:
    lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return lower.get(key.lower()) or lower.get(key.lower().rstrip("s")) or (close[0] if close else None)


def _unknown_keys(node: Node, allowed: tuple, where: str, found: list[Problem]) -> set[str]:
    """Report the keys of ``node`` that are not in ``allowed``; return what they were probably meant to be."""
    meant = set()
    for key, line, _ in node.items:
        if key in allowed:
            continue
        guess = _guess(key, allowed)
        meant.add(guess)
        if guess and guess.lower() == key.lower():
            msg = f'keys are case-sensitive: "{key}" should be "{guess}"'
        elif guess:
            msg = f'"{key}" is not a key of {where}: did you mean "{guess}"?'
        else:
            msg = f'"{key}" is not a key of {where} (those are: {", ".join(allowed)})'
        found.append(Problem(line, msg, f'write "{guess}"' if guess else f"delete the key on line {line}"))
    return meant


def _strings(node: Node, name: str, found: list[Problem]) -> list[tuple[str, int]]:
    items = node.items if isinstance(node.value, list) else [node]
    if isinstance(node.value, list) and not items:
        found.append(Problem(node.line, f"{name} is an empty list", f"give {name} at least one value"))
    out = []
    for item in items:
        if isinstance(item.value, str):
            out.append((item.value, item.line))
        else:
            found.append(Problem(item.line, f"{name} must be text or a list of texts, not {json.dumps(item.value)}",
                                 f'write {name} as "..." or ["...", "..."]'))
    return out


def _check_resource(arn: str, line: int, found: list[Problem]) -> None:
    if arn == "*":
        return
    parts = arn.split(":", 5)
    if not arn.startswith("arn:"):
        bucket = arn.removeprefix("s3://")
        found.append(Problem(line, f'"{arn}" is not an ARN (arn:aws:<service>:<region>:<account>:<resource>)',
                             f'for S3, write "arn:aws:s3:::{bucket}"; for everything, "*"'))
    elif len(parts) < 6 or not parts[2] or not parts[5]:
        found.append(Problem(line, f'"{arn}" is not a complete ARN: it needs six parts separated by ":" '
                             "(arn:partition:service:region:account:resource)",
                             'S3 leaves region and account empty: "arn:aws:s3:::bucket/key" has three colons '
                             "after s3"))
    elif parts[1] not in ("aws", "aws-cn", "aws-us-gov", "*"):
        found.append(Problem(line, f'"{arn}": the partition is "{parts[1]}"', 'write "arn:aws:..."'))
    elif parts[2] == "s3" and (parts[3] or parts[4]) and not parts[5].startswith(("accesspoint/", "job/")):
        found.append(Problem(line, f'"{arn}": S3 bucket and object ARNs have no region or account',
                             f'write "arn:aws:s3:::{parts[5]}"'))
    elif parts[5].startswith("s3://"):
        found.append(Problem(line, f'"{arn}": the resource part is a URL', f'write "arn:aws:s3:::{parts[5][5:]}"'))


def _check_statement(node: Node, kind: str, sids: dict, found: list[Problem]) -> None:
    if not isinstance(node.value, dict):
        found.append(Problem(node.line, f"a statement must be an object {{...}}, not {json.dumps(node.value)}",
                             'write {"Effect": ..., "Action": ..., "Resource": ...}'))
        return
    keys = {k: (line, n) for k, line, n in node.items}
    meant = _unknown_keys(node, STATEMENT_KEYS, "a statement", found)

    def need_one(a: str, b: str, what: str) -> None:
        if a in keys and b in keys:
            found.append(Problem(keys[b][0], f"a statement has {a} or {b}, not both", f"keep only {a}"))
        elif not {a, b} & (set(keys) | meant):
            found.append(Problem(node.line, f"this statement has no {a}: {what}", f'add "{a}": [...]'))

    if "Effect" not in keys and "Effect" not in meant:
        found.append(Problem(node.line, "this statement has no Effect", 'add "Effect": "Allow" (or "Deny")'))
    elif "Effect" in keys:
        line, eff = keys["Effect"]
        if eff.value not in ("Allow", "Deny"):
            low = str(eff.value).lower()
            fix = f'write "{low.capitalize()}" (capital first letter)' if low in ("allow", "deny") else \
                'write "Allow" or "Deny"'
            found.append(Problem(line, f"Effect is {json.dumps(eff.value)}: it must be exactly \"Allow\" or \"Deny\"", fix))
    need_one("Action", "NotAction", "which calls does it cover?")
    for key in ("Action", "NotAction"):
        if key in keys:
            for action, line in _strings(keys[key][1], key, found):
                if action != "*" and not _ACTION_RE.match(action):
                    found.append(Problem(line, f'"{action}" is not an action: actions are service:Name, like '
                                         '"s3:GetObject" (a * matches any characters)', "write service:Action"))
    if kind == "trust":
        for key in ("Resource", "NotResource"):
            if key in keys:
                found.append(Problem(keys[key][0], "a trust policy has no Resource: the resource is the role",
                                     f"delete {key}"))
    else:
        need_one("Resource", "NotResource", 'which resources does it cover ("*" for all)?')
        for key in ("Resource", "NotResource"):
            if key in keys:
                for arn, line in _strings(keys[key][1], key, found):
                    _check_resource(arn, line, found)
    has_principal = "Principal" in keys or "NotPrincipal" in keys
    if kind == "identity" and has_principal:
        found.append(Problem(keys.get("Principal", keys.get("NotPrincipal"))[0],
                             "a policy attached to a user, group or role has no Principal: the principal is "
                             "whoever it is attached to", "delete Principal (it belongs in trust and bucket policies)"))
    elif kind != "identity" and not has_principal:
        found.append(Problem(node.line, f"a {kind} policy statement needs a Principal: who is allowed?",
                             'add "Principal": {"AWS": "arn:aws:iam::<account>:user/<name>"}'))
    if "Sid" in keys:
        line, sid = keys["Sid"]
        if not isinstance(sid.value, str) or not sid.value.isalnum() or not sid.value.isascii():
            found.append(Problem(line, f"Sid {json.dumps(sid.value)}: a Sid has only letters and digits",
                                 'write e.g. "ReadReports"'))
        elif sid.value in sids:
            found.append(Problem(line, f'Sid "{sid.value}" is used twice (lines {sids[sid.value]} and {line})',
                                 "give every statement its own Sid"))
        else:
            sids[sid.value] = line
    if "Condition" in keys:
        line, cond = keys["Condition"]
        for op, op_line, body in cond.items or []:
            base = re.sub(r"^(ForAllValues|ForAnyValue):|IfExists$", "", op)
            if base not in _OPERATORS:
                guess = _guess(base, _OPERATORS)
                found.append(Problem(op_line, f'"{op}" is not a condition operator'
                                     + (f': did you mean "{guess}"?' if guess else ""),
                                     "use an operator such as StringEquals or StringLike"))
            if not isinstance(body.value, dict):
                found.append(Problem(op_line, f"{op} must map condition keys to values",
                                     f'write "{op}": {{"s3:prefix": ["..."]}}'))
        if not isinstance(cond.value, dict) or not cond.value:
            found.append(Problem(line, "Condition must be an object of operators", 'e.g. {"StringLike": {...}}'))


def problems(document: Any, *, kind: str = "identity") -> list[Problem]:
    """Every problem of ``document`` (JSON text or dict), sorted by line; empty when it is fine."""
    if kind not in KINDS:
        raise AWSError(f"unknown policy kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    root, found = parse(text_of(document))
    if root is None:
        return found
    if not isinstance(root.value, dict):
        return [Problem(root.line, "a policy is a JSON object {...}", 'start with {"Version": "2012-10-17", ...}')]
    keys = {k: (line, n) for k, line, n in root.items}
    meant = _unknown_keys(root, TOP_KEYS, "a policy", found)
    if "Version" not in keys:
        if "Version" not in meant:
            found.append(Problem(root.line, "the policy has no Version", f'add "Version": "{VERSION}" first'))
    elif keys["Version"][1].value != VERSION:
        found.append(Problem(keys["Version"][0], f"Version is {json.dumps(keys['Version'][1].value)}: it names the "
                             f"policy language, and IAM wants {VERSION} (it is not today's date)",
                             f'write "Version": "{VERSION}"'))
    misspelt = [(line, n) for k, line, n in root.items if k not in TOP_KEYS and _guess(k, TOP_KEYS) == "Statement"]
    if "Statement" not in keys and not misspelt:
        found.append(Problem(root.line, "the policy has no Statement", 'add "Statement": [{...}]'))
        return sorted(found, key=lambda p: p.line)
    line, stmts = keys.get("Statement") or misspelt[0]  # a misspelt one is still checked
    items = stmts.items if isinstance(stmts.value, list) else [stmts]
    if not items:
        found.append(Problem(line, "Statement is an empty list", "add at least one statement"))
    sids: dict = {}
    for stmt in items:
        _check_statement(stmt, kind, sids, found)
    return sorted(found, key=lambda p: p.line)


def check(document: Any, *, kind: str = "identity") -> dict:
    """The policy as a dict, or :class:`PolicyError` naming every problem with its line."""
    text = text_of(document)
    found = problems(text, kind=kind)
    if found:
        raise PolicyError(found, text)
    return json.loads(text)


def _snippet(text: str, line: int) -> str:
    lines = text.splitlines() or [""]
    lo, hi = max(1, line - 1), min(len(lines), line + 1)
    return "\n".join(f"{'>' if n == line else ' '} {n:3} | {lines[n - 1]}" for n in range(lo, hi + 1))
