"""A (valid) IAM policy in plain words, line by line (see :mod:`coursekit.aws.iam`).

Lesson: ``12-iam`` (through :mod:`coursekit.aws.iam`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .grammar import ACTIONS, text_of, check
from .jsonlines import parse


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
    text = text_of(document)
    check(text, kind=kind)
    root, _ = parse(text)
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
