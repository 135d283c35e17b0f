"""Read a Dockerfile the way ``docker build`` does, without Docker.

:func:`parse` turns Dockerfile text into :class:`Instruction` objects grouped in
:class:`Stage` objects, and collects what the builder would refuse as :class:`Problem`
objects (with a line number) instead of raising. It follows Docker's rules for:

* parser directives (``# escape=`` and ``# syntax=``): only at the very top, before any
  comment, blank line or instruction;
* line continuations with the escape character (``\\``, or ````` after ``# escape=```);
  comment and blank lines inside a continuation are dropped, as Docker does;
* comments (``#`` at the start of a line only: ``RUN echo # hi`` is not a comment);
* keywords in any case (``run`` is ``RUN``), ``--flags`` (``COPY --from=build``);
* exec (JSON) form versus shell form: ``CMD ["app"]`` against ``CMD app``;
* ``ARG`` before the first ``FROM``, and ``FROM image AS name`` stages;
* heredocs (``RUN <<EOF`` ... ``EOF``): the body belongs to the instruction.

>>> df = parse("ARG V=3.12\\nFROM python:${V}-slim AS build\\nRUN pip install \\\\\\n  flask\\n")
>>> [(i.line, i.keyword, i.args) for i in df.instructions]
[(1, 'ARG', 'V=3.12'), (2, 'FROM', 'python:${V}-slim AS build'), (3, 'RUN', 'pip install   flask')]
>>> df.stages[0].name, df.stages[0].image
('build', 'python:3.12-slim')

Lesson: the Dockerfiles lesson, through :mod:`coursekit.dockerfile.linter`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

#: Every instruction the builder knows.
KEYWORDS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
#: Instructions whose arguments may be a JSON array (exec form).
JSON_FORM = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Problem:
    """Something ``docker build`` would reject, or silently misread."""

    line: int
    text: str
    reason: str
    fix: str


@dataclass
class Instruction:
    line: int                 # first line of the instruction (1-based)
    end_line: int             # last line, after continuations and heredocs
    keyword: str              # upper case: "RUN"
    args: str                 # everything after the keyword, continuations joined
    text: str                 # the instruction as written, continuations joined
    flags: dict[str, str] = field(default_factory=dict)  # leading --name=value options
    rest: str = ""            # args without the flags
    exec_form: list[str] | None = None  # the JSON array, when written in exec form
    stage: int = -1           # index of the stage it belongs to (-1: before the first FROM)
    ignore: set[str] = field(default_factory=set)  # rule ids from "# cklint: ignore=..."


@dataclass
class Stage:
    index: int
    image: str                # base image, ARGs from before the first FROM substituted
    name: str | None          # the "AS name", lower case
    base_stage: int | None    # index of an earlier stage this one starts from
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    stages: list[Stage]
    directives: dict[str, tuple[int, str]]  # name (lower case) -> (line, value)
    problems: list[Problem]


def _split_flags(args: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name.lower()] = value  # repeated --mount keeps the last; enough for linting
        rest = rest.lstrip()
    return flags, rest


def _substitute(text: str, args: dict[str, str]) -> str:
    """Replace $NAME and ${NAME} by known ARG values; leave unknown ones as they are."""
    return _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def _logical_lines(lines: list[str], escape: str, first: int, problems: list[Problem]):
    """Yield (first line, last line, text, comment lines just above) for each instruction."""
    i, comments = first, []
    while i < len(lines):
        raw = lines[i].strip()
        if not raw:
            comments = []
            i += 1
            continue
        if raw.startswith("#"):
            comments.append(raw)
            i += 1
            continue
        start, text = i, ""
        continues = re.compile(re.escape(escape) + r"[ \t]*$")
        while continues.search(lines[i]):
            text += continues.sub("", lines[i])
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                i += 1  # Docker drops blank and comment lines inside a continuation
            if i >= len(lines):
                problems.append(Problem(start + 1, text.strip(), "the file ends in the middle of an instruction:"
                                        f" its last line ends with {escape!r}",
                                        f"remove the {escape!r} at the end of the last line"))
                i -= 1
                break
        else:
            text += lines[i]
        words = text.split(None, 1)
        for m in _HEREDOC.finditer(text if words and words[0].upper() in {"RUN", "COPY", "ADD"} else ""):
            body, closed = [], False
            while not closed and i + 1 < len(lines):
                i += 1
                closed = (lines[i].strip() if m.group(1) else lines[i].rstrip("\r\n")) == m.group(3)
                if not closed:
                    body.append(lines[i])
            if not closed:
                problems.append(Problem(start + 1, text.strip(), f"the heredoc <<{m.group(3)} is never closed",
                                        f"end it with a line that is just {m.group(3)}"))
            text += "\n" + "\n".join(body)
        yield start + 1, i + 1, text.strip(), comments
        comments = []
        i += 1


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text. Never raises on bad input: see ``Dockerfile.problems``."""
    lines = text.splitlines()
    directives: dict[str, tuple[int, str]] = {}
    problems: list[Problem] = []
    first = 0
    for first, line in enumerate(lines):  # directives: only at the very top
        m = _DIRECTIVE.match(line.strip())
        if not m or m.group(1).lower() not in {"escape", "syntax", "check"} or m.group(1).lower() in directives:
            break
        directives[m.group(1).lower()] = (first + 1, m.group(2))
    else:
        first = len(lines)
    escape = directives.get("escape", (0, "\\"))[1]
    if escape not in ("\\", "`"):
        problems.append(Problem(directives["escape"][0], f"# escape={escape}", "the escape character can "
                                "only be a backslash or a backtick", "write `# escape=\\` or `# escape=``"))
        escape = "\\"

    instructions: list[Instruction] = []
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for start, end, logical, comments in _logical_lines(lines, escape, first, problems):
        keyword, args = (re.split(r"\s+", logical, maxsplit=1) + [""])[:2]
        keyword, args = keyword.upper(), args.strip()
        inst = Instruction(start, end, keyword, args, logical, stage=len(stages) - 1)
        for c in comments:
            m = re.match(r"#\s*cklint:\s*ignore\s*=\s*(.+)", c)
            if m:
                inst.ignore |= {r.strip().upper() for r in m.group(1).split(",") if r.strip()}
        if keyword not in KEYWORDS:
            problems.append(Problem(start, logical, f"`{keyword}` is not a Dockerfile instruction",
                                    "check the spelling; instructions are FROM, RUN, COPY, CMD, ... "
                                    "(a line that continues the one above needs a `\\` at the end of that one)"))
            continue
        if not args:
            problems.append(Problem(start, logical, f"{keyword} has nothing after it",
                                    f"give {keyword} its arguments, or delete the line"))
            continue
        inst.flags, inst.rest = _split_flags(args) if keyword != "ONBUILD" else ({}, args)
        if keyword in JSON_FORM and inst.rest.startswith("["):
            try:
                value = json.loads(inst.rest)
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError
                inst.exec_form = value
            except ValueError:
                problems.append(Problem(start, logical, "this looks like exec form but is not a valid JSON "
                                        "array, so Docker silently runs it as a shell command instead",
                                        'use double quotes and close the bracket: ["python", "app.py"]'))
        if keyword == "FROM":
            words = inst.rest.split()
            image = _substitute(words[0], global_args) if words else ""
            name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
            names = {s.name: s.index for s in stages if s.name}
            stage = Stage(len(stages), image, name, names.get(image.lower()))
            stages.append(stage)
            inst.stage = stage.index
        elif not stages and keyword != "ARG":
            problems.append(Problem(start, logical, f"{keyword} comes before the first FROM; only ARG may",
                                    "start the Dockerfile with FROM <image> (ARGs for it may come first)"))
            continue
        elif not stages:  # ARG before FROM: its default may be used in FROM lines
            name, _, value = inst.rest.partition("=")
            global_args[name.strip()] = value.strip().strip("\"'")
        instructions.append(inst)
        if stages:
            stages[-1].instructions.append(inst)
    if not stages:
        problems.append(Problem(max(1, len(lines)), "", "there is no FROM instruction: every image starts "
                                "from another one", "add a first line such as FROM python:3.12-slim"))
    return Dockerfile(instructions, stages, directives, problems)
