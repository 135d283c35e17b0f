"""The gate's vocabulary: a request's route, and what a rule decides (forward, answer, refuse).

:func:`route` takes the API version prefix off a request's path and decodes it once, refusing what
no client sends (``..``, ``//``, NUL, a second level of %-encoding). A rule (:mod:`.policy`) then
returns a :class:`Forward` (to the engine, maybe rewritten, with a rewrite of its answer), an
:class:`Answer` of the gate's own, or raises :class:`Refused` (Docker's error JSON).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = re.compile(r"/v(\d+\.\d+)(/.*)\Z")
class Refused(Exception):
    """A request the policy does not let through: ``status`` and Docker's error message."""

    def __init__(self, status: int, message: str, quiet: bool = False):
        super().__init__(message)
        self.status, self.message = status, message
        self.quiet = quiet or status == 404  # "no such container" is an answer, not a refusal worth a note


def refuse(rule: str, allowed: str, status: int = 403):
    raise Refused(status, f"refused by the grading sandbox ({rule}): {allowed}")


def missing(kind: str, ref: str):
    raise Refused(404, f"No such {kind}: {ref}")


@dataclass
class Forward:
    """Send this to the engine; ``then`` rewrites a JSON answer; ``stream`` passes chunks on as they come."""

    method: str
    path: str                       # without the version prefix
    query: str = ""
    body: bytes = b""
    then: Callable[[Any], Any] | None = None
    lines: Callable[[dict], dict] | None = None   # a stream of JSON lines, rewritten line by line
    after: Callable[[int, Any], None] | None = None  # (status, JSON answer) once it is in


@dataclass
class Answer:
    """Answered by the gate itself (what is true for this submission, without asking the engine)."""

    status: int
    doc: Any


@dataclass
class Caps:
    """How much one submission may make."""

    containers: int = 30
    images: int = 30
    volumes: int = 20
    networks: int = 10
    services: int = 5
    replicas: int = 6                   # per service
    body_bytes: int = 1 << 20           # a JSON request body
    context_bytes: int = 50 << 20       # a build context
    answer_bytes: int = 32 << 20        # a JSON answer the gate rewrites


@dataclass
class Route:
    method: str
    version: str
    parts: list[str]
    query: dict[str, list[str]]
    raw_query: str


def route(method: str, target: str) -> Route:
    """The request's path, checked and split; raises Refused for a path no client sends."""
    split = urlsplit(target)
    if "%" in unquote(split.path):
        refuse("path", "a path is %-encoded once at most", 400)
    path = unquote(split.path)
    version = ""
    if m := VERSION.fullmatch(path):
        version, path = m[1], m[2]
    parts = path.split("/")[1:]
    if not path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts[:-1]) \
            or parts[-1:] in (["."], [".."]):
        refuse("path", "no empty, '.' or '..' parts in an API path", 400)
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return Route(method.upper(), version, parts, parse_qs(split.query, keep_blank_values=True), split.query)


def one(query: dict, key: str, default: str = "") -> str:
    return (query.get(key) or [default])[0]
