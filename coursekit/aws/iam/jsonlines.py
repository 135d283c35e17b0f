"""JSON text read with its line numbers, for :mod:`coursekit.aws.iam`: a syntax error told in a
learner's words (a trailing comma, single quotes, a comment...) with its line, and the parsed
document with the line each value starts on (and keys given twice).

Lesson: ``12-iam`` (through :mod:`coursekit.aws.iam`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Node:  # a JSON value and the line it starts on; .items: [(key, key line, Node)] or [Node]
    value: Any
    line: int
    items: list | None = None


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

    def value(self) -> Node:
        self.ws()
        start, ch = self.pos, self.text[self.pos]
        if ch == "{":
            self.pos += 1
            items, seen = [], {}
            while True:
                self.ws()
                if self.text[self.pos] == "}":
                    self.pos += 1
                    return Node({k: n.value for k, _, n in items}, self.line(start), items)
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
                    return Node([n.value for n in items], self.line(start), items)
                if self.text[self.pos] == ",":
                    self.pos += 1
                items.append(self.value())
        value, self.pos = self.decoder.raw_decode(self.text, self.pos)
        return Node(value, self.line(start))


def parse(text: str) -> tuple[Node | None, list[Problem]]:
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
