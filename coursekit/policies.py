"""IAM policy documents, read the way a learner writes them: problems with their line, and
an explanation of each line.

>>> from coursekit import policies
>>> policies.check('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
...                '"Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}]}')["Version"]
'2012-10-17'

* :func:`check` parses a policy (JSON text or a dict) and raises :class:`PolicyError` listing
  every problem with the line at fault: JSON syntax (a trailing comma, single quotes, a missing
  comma, comments ...), a missing ``Version``/``Statement``, a misspelt key (``"Actions"``), an
  ``Effect`` other than ``Allow``/``Deny``, an ``Action`` that is not ``service:Name`` text, a
  ``Resource`` that is not an ARN, a key given twice. A dict is numbered as
  :func:`dumps` prints it. :func:`problems` returns the list instead of raising.
* :func:`explain` says in plain words what each line means.
* :func:`decide` applies AWS's documented evaluation rules (an explicit Deny wins, else an
  Allow, else denied by default) to say *which* statement allows or denies a call. moto has no
  ``simulate_principal_policy``; this plays that part. It does not evaluate ``Condition`` blocks
  (moto does not either, for S3): it says so when one applies.

``kind`` is ``"identity"`` (attached to a user, group or role: no ``Principal``), ``"trust"``
(a role's trust policy: ``Principal``, no ``Resource``) or ``"resource"`` (a bucket policy:
both). Lesson: ``12-iam`` (and its exercise).
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import CoursekitError

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


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class _Node:  # a JSON value and the line it starts on; .items: [(key, key line, _Node)] or [_Node]
    value: Any
    line: int
    items: list | None = None


def dumps(document: Any) -> str:
    """The JSON text :func:`check` numbers a dict by (two-space indent)."""
    return json.dumps(document, indent=2)


def _text_of(document: Any) -> str:
    if isinstance(document, (bytes, bytearray)):
        document = document.decode("utf-8")
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        return dumps(document)
    raise PolicyError([Problem(1, f"a policy is JSON text or a dict, not a {type(document).__name__}",
                               "pass the policy as a JSON string or a Python dict")], "")


# --------------------------------------------------------------------------- JSON with lines
def _syntax_problem(text: str, exc: json.JSONDecodeError) -> Problem:
    pos, msg = exc.pos, exc.msg
    line = text.count("\n", 0, pos) + 1
    before = text[:pos].rstrip()
    prev_line = before.count("\n") + 1
    here = text[pos:pos + 5] or " "
    if not text.strip():
        return Problem(1, "the policy is empty", 'start from {"Version": "2012-10-17", "Statement": [...]}')
    if before.endswith(",") and here[:1] in "}]":
        return Problem(prev_line, f"a comma after the last item, before the {here[:1]!r} on line {line}: "
                       "JSON allows no trailing comma", f"delete the comma at the end of line {prev_line}")
    if here[:1] == "'":
        return Problem(line, "single quotes: JSON strings and keys take double quotes",
                       f"write \"...\" instead of '...' on line {line}")
    if here[:1] in "/#":
        return Problem(line, "a comment: JSON has no comments", f"delete the comment on line {line}")
    if msg.startswith("Expecting ',' delimiter"):
        return Problem(prev_line, f"a comma is missing between this item and the next one (line {line})",
                       f"add a comma at the end of line {prev_line}")
    if msg.startswith("Expecting property name") and (here[:1].isalpha() or here[:1] == "_"):
        return Problem(line, "a key without double quotes", f'put the key on line {line} in double quotes: "Key"')
    if msg == "Expecting value" and here.startswith(("True", "False", "None")):
        return Problem(line, f"{re.match(r'[A-Za-z]+', here).group()} is Python, not JSON",
                       "JSON writes true, false and null in lower case")
    if msg == "Expecting value" and pos >= len(text.rstrip()):
        return Problem(prev_line, "the policy ends too early: a closing } or ] is missing",
                       "close every { with } and every [ with ]")
    if msg.startswith("Extra data"):
        return Problem(line, "text after the end of the policy (a stray } or ], or a second document?)",
                       f"delete what follows the policy's last }} from line {line} on")
    if msg.startswith("Invalid control character") and here[:1] in "\r\n":
        return Problem(line, "a string that is never closed on its line", f'end the string on line {line} with "')
    if msg.startswith("Invalid control character"):
        return Problem(line, "a tab or control character inside a string", "write \\t, or use spaces")
    if msg.startswith("Unterminated string"):
        return Problem(line, "a string that is never closed", f'end the string that starts on line {line} with "')
    return Problem(line, f"not valid JSON here: {msg} (column {exc.colno})", "fix the JSON syntax on this line")


class _Parser:
    """Recursive descent over text already known to be valid JSON, keeping line numbers."""

    def __init__(self, text: str):
        self.text, self.pos, self.dups = text, 0, []
        self.decoder = json.JSONDecoder()

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def value(self) -> _Node:
        self.ws()
        start, ch = self.pos, self.text[self.pos]
        if ch == "{":
            self.pos += 1
            items, seen = [], {}
            while True:
                self.ws()
                if self.text[self.pos] == "}":
                    self.pos += 1
                    return _Node({k: n.value for k, _, n in items}, self.line(start), items)
                if self.text[self.pos] == ",":
                    self.pos += 1
                    self.ws()
                key_line = self.line(self.pos)
                key, self.pos = json.decoder.scanstring(self.text, self.pos + 1)
                self.ws()
                self.pos += 1  # the colon
                node = self.value()
                if key in seen:
                    self.dups.append((key, seen[key], key_line))
                    items = [it for it in items if it[0] != key]
                seen[key] = key_line
                items.append((key, key_line, node))
        if ch == "[":
            self.pos += 1
            items = []
            while True:
                self.ws()
                if self.text[self.pos] == "]":
                    self.pos += 1
                    return _Node([n.value for n in items], self.line(start), items)
                if self.text[self.pos] == ",":
                    self.pos += 1
                items.append(self.value())
        value, self.pos = self.decoder.raw_decode(self.text, self.pos)
        return _Node(value, self.line(start))


def _parse(text: str) -> tuple[_Node | None, list[Problem]]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [_syntax_problem(text, exc)]
    parser = _Parser(text)
    root = parser.value()
    found = [Problem(second, f'the key "{key}" appears twice ' + (f"(lines {first} and {second})" if first != second
                     else "on this line") + ": JSON keeps only the last one, so the first is silently lost",
                     f'merge them into one "{key}" with a list of values') for key, first, second in parser.dups]
    return root, found


# --------------------------------------------------------------------------- the grammar
def _guess(key: str, allowed: tuple) -> str | None:
    lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return lower.get(key.lower()) or lower.get(key.lower().rstrip("s")) or (close[0] if close else None)


def _unknown_keys(node: _Node, allowed: tuple, where: str, found: list[Problem]) -> set[str]:
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


def _strings(node: _Node, name: str, found: list[Problem]) -> list[tuple[str, int]]:
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


def _check_statement(node: _Node, kind: str, sids: dict, found: list[Problem]) -> None:
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
        raise CoursekitError(f"unknown policy kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    root, found = _parse(_text_of(document))
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
    text = _text_of(document)
    found = problems(text, kind=kind)
    if found:
        raise PolicyError(found, text)
    return json.loads(text)


def _snippet(text: str, line: int) -> str:
    lines = text.splitlines() or [""]
    lo, hi = max(1, line - 1), min(len(lines), line + 1)
    return "\n".join(f"{'>' if n == line else ' '} {n:3} | {lines[n - 1]}" for n in range(lo, hi + 1))


# --------------------------------------------------------------------------- explain
def describe_action(action: str) -> str:
    """Plain words for one action pattern."""
    service, _, name = action.partition(":")
    if action == "*":
        return "every action of every service"
    if name == "*":
        return f"every {service} action"
    if "*" in name or "?" in name:
        return f"every {service} action matching {name}"
    key = next((a for a in ACTIONS if a.lower() == action.lower()), None)
    return f"{action} ({ACTIONS[key]})" if key else f"the {service} action {name}"


def describe_resource(arn: str) -> str:
    """Plain words for one resource ARN (or ``*``)."""
    if arn == "*":
        return "every resource"
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    service, res = parts[2], parts[5]
    if service == "s3":
        bucket, slash, key = res.partition("/")
        if not slash:
            return f"the bucket {bucket} itself (listing it, its settings), not its objects"
        if key == "*":
            return f"every object in the bucket {bucket}"
        if key.endswith("*"):
            return f'the objects in {bucket} whose key starts with "{key[:-1]}"'
        return f'the object "{key}" in the bucket {bucket}'
    kind, _, name = res.partition("/")
    return f"the {service} {kind} {name}".rstrip() if name else f"the {service} resource {res}"


def _describe_principal(value: Any) -> str:
    if value == "*" or value == {"AWS": "*"}:
        return "anyone at all (every AWS account, even anonymous callers)"
    who = []
    for kind, names in (value.items() if isinstance(value, dict) else [("AWS", value)]):
        for name in [names] if isinstance(names, str) else names:
            m = re.match(r"arn:[\w-]+:iam::(\d+):(user|role|root)/?(.*)", name)
            if kind == "Service":
                who.append(f"the AWS service {name}")
            elif m and m.group(2) == "root":
                who.append(f"the account {m.group(1)} (its own IAM policies decide who)")
            elif m:
                who.append(f"the IAM {m.group(2)} {m.group(3)}")
            else:
                who.append(f"{kind} {name}")
    return ", ".join(who)


@dataclass(repr=False)
class Explanation:
    """Each line of a policy with what it means (``rows``), and one sentence per statement."""

    rows: list[tuple[int, str, str]]
    statements: list[str]

    def __str__(self) -> str:
        width = min(60, max((len(src) for _, src, _ in self.rows), default=0))
        body = "\n".join(f"{n:3} | {src:<{width}} | {note}".rstrip(" |") for n, src, note in self.rows)
        return body + "\n\n" + "\n".join(self.statements)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        left = "style='text-align:left'"
        cells = "".join(f"<tr><td>{n}</td><td {left}><code style='white-space:pre'>{html.escape(src)}</code></td>"
                        f"<td {left}>{html.escape(note)}</td></tr>" for n, src, note in self.rows)
        said = "".join(f"<li>{html.escape(s)}</li>" for s in self.statements)
        return (f"<table><tr><th>line</th><th {left}>policy</th><th {left}>meaning</th></tr>{cells}</table>"
                f"<ul>{said}</ul>")


def explain(document: Any, *, kind: str = "identity") -> Explanation:
    """What each line of a (valid) policy means. Raises :class:`PolicyError` if it has problems."""
    text = _text_of(document)
    check(text, kind=kind)
    root, _ = _parse(text)
    notes: dict[int, list[str]] = {}

    def note(line: int, what: str) -> None:
        notes.setdefault(line, []).append(what)

    keys = {k: (line, n) for k, line, n in root.items}
    note(keys["Version"][0], "the version of the policy language (always this date)")
    stmt_line, stmts = keys["Statement"]
    items = stmts.items if isinstance(stmts.value, list) else [stmts]
    note(stmt_line, f"{len(items)} statement{'s follow' if len(items) > 1 else ' follows'}; a call is allowed "
                    "only if a statement allows it and none denies it")
    sentences = []
    for i, stmt in enumerate(items, 1):
        s = {k: (line, n) for k, line, n in stmt.items}
        effect = s["Effect"][1].value
        note(s["Effect"][0], f"statement {i} ALLOWS what it matches" if effect == "Allow" else
             f"statement {i} DENIES what it matches, whatever any other statement allows")
        if "Sid" in s:
            note(s["Sid"][0], "a label for the statement (AWS does not use it to decide)")
        said = {}
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key not in s:
                continue
            node = s[key][1]
            values = node.items if isinstance(node.value, list) else [node]
            describe = describe_action if "Action" in key else describe_resource
            words = [describe(v.value) for v in values]
            said[key] = ("everything except " if key.startswith("Not") else "") + "; ".join(words)
            for v in values:
                note(v.line, ("except " if key.startswith("Not") else "") + describe(v.value))
        who = ""
        for key in ("Principal", "NotPrincipal"):
            if key in s:
                who = ("everyone except " if key == "NotPrincipal" else "") + _describe_principal(s[key][1].value)
                note(s[key][0], f"who: {who}")
        cond = ""
        if "Condition" in s:
            for op, op_line, body in s["Condition"][1].items:
                for ck, ck_line, val in body.items or []:
                    note(ck_line, f"only when {ck} {op} {json.dumps(val.value)}")
                    cond = " (only under its Condition)"
        what = said.get("Action") or said.get("NotAction", "")
        where = said.get("Resource") or said.get("NotResource") or "this role"
        verb = "allows" if effect == "Allow" else "denies"
        who = f" to {who}" if who else ""
        sentences.append(f"Statement {i} (line {stmt.line}) {verb} {what}{who}, on {where}{cond}.")
    lines = text.splitlines()
    rows = [(n, lines[n - 1].rstrip(), "; ".join(notes.get(n, []))) for n in range(1, len(lines) + 1)]
    return Explanation(rows, sentences)


# --------------------------------------------------------------------------- decide
#: boto3 operations whose IAM action has another name.
_OPERATION_ACTIONS = {"s3": {"ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadObject": "GetObject",
                             "HeadBucket": "ListBucket", "ListBuckets": "ListAllMyBuckets",
                             "ListObjectVersions": "ListBucketVersions"}}


def action_for(service: str, operation: str) -> str:
    """The IAM action a boto3 call needs: ``action_for("s3", "ListObjectsV2")`` is ``"s3:ListBucket"``."""
    return f"{service}:{_OPERATION_ACTIONS.get(service, {}).get(operation, operation)}"


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

    from . import aws

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
        text = _text_of(doc)
        check(text, kind="identity")
        root, _ = _parse(text)
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


__all__ = [
    "VERSION",
    "Attempt",
    "Decision",
    "Explanation",
    "PolicyError",
    "Problem",
    "action_for",
    "attempt",
    "check",
    "decide",
    "describe_action",
    "describe_resource",
    "dumps",
    "explain",
    "problems",
    "session_for",
]
