"""A Dockerfile checker for students: what will hurt later, why, and what to write instead.

>>> from coursekit.dockerfile.linter import lint
>>> report = lint('''
... FROM python
... RUN pip install flask
... CMD python app.py
... ''')
>>> for f in report.findings:
...     print(f.line, f.rule, f.severity)
2 CK101 warning
2 CK302 warning
3 CK205 warning
4 CK501 warning
>>> print(report.findings[-1].fix)
use the exec form: CMD ["python", "app.py"]
>>> report.ok  # warnings only: the image builds
True
>>> lint("FROM python:3.12-slim\\nRUN apt-get upgrade\\nCOPY ['app.py', '/app/']").errors[0].line
3

To silence a rule for one instruction, put ``# cklint: ignore=CK205`` (several: ``CK205,CK302``)
in the comment lines just above it. In a notebook, ``report`` shows as a table; in the shell,
``coursekit lint Dockerfile`` (``--json`` for machines) exits with 1 when there are errors.

Rules (severity; why)

=====  =======  ==============================================================================
CK000  error    syntax: unknown instruction, nothing before FROM but ARG, invalid JSON array
                (Docker would silently run it as a shell command), empty instruction, no FROM
CK101  warning  image without a tag: it means `:latest`, which changes under you
CK102  warning  image tagged `:latest`: builds are not repeatable (pin a version or digest)
CK201  info     apt-get install without --no-install-recommends: extras you did not ask for
CK202  warning  apt-get install without deleting /var/lib/apt/lists in the same RUN: bigger image
CK203  warning  apt-get upgrade / dist-upgrade: use a newer base image instead
CK204  warning  apt-get update alone in its RUN: its cached layer makes later installs stale
CK205  warning  pip install without --no-cache-dir: the download cache stays in the image
CK206  warning  sudo in RUN: RUN already runs as root, and sudo is rarely installed
CK207  warning  cd in RUN: it only lasts for that RUN; WORKDIR sets the folder for good
CK208  warning  apt-get install without -y: the build stops at "Do you want to continue?"
CK301  error    a secret (PASSWORD, SECRET, TOKEN, API_KEY...) with a value in ENV or ARG:
                anyone with the image can read it with `docker history`
CK302  warning  no USER in the final stage: the container runs as root
CK303  warning  the final USER is root (or 0)
CK401  warning  ADD of a URL: no cache control, and the file stays in its layer (use curl)
CK402  warning  ADD of a local file that is not an archive: COPY says what it does
CK403  warning  relative WORKDIR: it depends on whatever WORKDIR came before
CK404  warning  `COPY . .` before installing dependencies: every code change reinstalls them
CK501  warning  CMD/ENTRYPOINT in shell form: /bin/sh is PID 1 and may not pass on SIGTERM
CK502  warning  more than one CMD (or ENTRYPOINT) in a stage: only the last one counts
CK503  error    EXPOSE with an invalid port (or a host:container mapping, which is for `docker run -p`)
CK504  info     the final stage EXPOSEs a port but has no HEALTHCHECK
CK601  warning  MAINTAINER is deprecated: use LABEL org.opencontainers.image.authors=...
CK602  warning  `# syntax=` directive: the course's machines cannot pull the frontend image it names
=====  =======  ==============================================================================

Lesson: the Dockerfiles lesson (students lint their own Dockerfile before building it).
"""
from __future__ import annotations

import html
import json
import re
import shlex
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from .syntax import Dockerfile, Instruction, Stage, parse
from ..errors import DockerfileError
from ..ui.notebook import html_text
from ..ui.palette import BAD, BUSY, GOOD, WARN

SEVERITIES = ("error", "warning", "info")
RULES = {  # id -> severity; the module docstring has the table students read
    "CK000": "error", "CK101": "warning", "CK102": "warning", "CK201": "info", "CK202": "warning",
    "CK203": "warning", "CK204": "warning", "CK205": "warning", "CK206": "warning", "CK207": "warning",
    "CK208": "warning", "CK301": "error", "CK302": "warning", "CK303": "warning", "CK401": "warning",
    "CK402": "warning", "CK403": "warning", "CK404": "warning", "CK501": "warning", "CK502": "warning",
    "CK503": "error", "CK504": "info", "CK601": "warning", "CK602": "warning",
}
SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)(_|$)")
NOT_A_SECRET = re.compile(r"_(FILE|PATH|DIR)$")  # e.g. POSTGRES_PASSWORD_FILE=/run/secrets/db
ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst)$", re.I)
URL = re.compile(r"^(https?://|git@)", re.I)
PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.I)


@dataclass
class Finding:
    rule: str       # "CK202"
    severity: str   # "error", "warning" or "info"
    line: int       # first line of the instruction (1-based)
    text: str       # the instruction as written
    reason: str     # why it is a problem, one line
    fix: str        # what to write instead, one line


@dataclass
class Report:
    findings: list[Finding]
    source: str = "<text>"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when nothing stops the image from building right (warnings are allowed)."""
        return not self.errors

    def __str__(self) -> str:
        if not self.findings:
            return "✔ no problems found"
        width = max(len(str(f.line)) for f in self.findings)
        return "\n".join(f"line {f.line:<{width}}  {f.rule}  {f.severity:<7}  {f.reason} → {f.fix}"
                         for f in self.findings)

    def to_dict(self) -> dict:
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        return {"source": self.source, "ok": self.ok, "counts": counts,
                "findings": [asdict(f) for f in self.findings]}

    def _repr_html_(self) -> str:
        if not self.findings:
            return f"<p style='color:{GOOD}'>✔ {html.escape(self.source)}: no problems found</p>"
        colors = {"error": BAD, "warning": WARN, "info": BUSY}
        rows = "".join(
            f"<tr><td>{f.line}</td><td><b>{f.rule}</b></td>"
            f"<td style='color:{colors[f.severity]}'>{f.severity}</td>"
            f"<td><code>{html.escape(_short(f.text))}</code></td><td>{html_text(f.reason)}</td>"
            f"<td>{html_text(f.fix)}</td></tr>" for f in self.findings)
        c = self.to_dict()["counts"]
        summary = ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in c.items() if n)
        return (f"<p><b>{html.escape(self.source)}</b>: {summary}</p><table class='coursekit-lint'>"
                "<tr><th>Line</th><th>Rule</th><th>Severity</th><th>Instruction</th><th>Why</th>"
                f"<th>What to do</th></tr>{rows}</table>")


def _short(text: str, size: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


# --- reading shell commands inside RUN ----------------------------------------------------

def _commands(inst: Instruction) -> list[list[str]]:
    """The simple commands of a RUN, split at && || ; | and newlines, env assignments dropped."""
    if inst.exec_form is not None:
        return [inst.exec_form]
    script = inst.rest.replace("\n", " ; ")
    try:
        lex = shlex.shlex(script, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError:  # unbalanced quotes: a rough split is good enough to lint
        tokens = re.split(r"\s+|(&&|\|\||;|\|)", script)
    out, cmd = [], []
    for tok in filter(None, tokens):
        if set(tok) <= set(";&|()"):
            out.append(cmd)
            cmd = []
        elif cmd or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tok):
            cmd.append(tok)
    return [c for c in out + [cmd] if c]


def _unsudo(cmd: list[str]) -> list[str]:
    if cmd and cmd[0] == "sudo":
        cmd = cmd[1:]
        while cmd and (cmd[0].startswith("-") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0])):
            cmd = cmd[1:]  # sudo's options, and VAR=value given to the command
    return cmd


def _subcommand(cmd: list[str], start: int) -> str:
    """The first word after the program and its options: `install` in `apt-get -y install x`."""
    i = start
    while i < len(cmd) and cmd[i].startswith("-"):
        i += 2 if cmd[i] in ("-o", "-c", "-t") else 1
    return cmd[i] if i < len(cmd) else ""


def _apt(cmd: list[str]) -> str:
    return _subcommand(cmd, 1) if cmd and cmd[0] in ("apt-get", "apt") else ""


def _pip_args(cmd: list[str]) -> list[str] | None:
    """The arguments of a `pip install` (also `python3 -m pip install`), else None."""
    if cmd and re.match(r"^pip[0-9.]*$", cmd[0]):
        start = 1
    elif len(cmd) > 2 and re.match(r"^python[0-9.]*$", cmd[0]) and cmd[1:3] == ["-m", "pip"]:
        start = 3
    else:
        return None
    return cmd[start:] if _subcommand(cmd, start) == "install" else None


def _installs_dependencies(cmd: list[str]) -> bool:
    """Does this command install packages (not the project itself, as `pip install .` does)?"""
    pip = _pip_args(cmd)
    if pip is not None:
        targets = [a for a in pip if not a.startswith("-") and a != "install"]
        return "-r" in pip or any(a.startswith("--requirement") for a in pip) \
            or any(not t.startswith((".", "/")) for t in targets)
    word, sub = (cmd + ["", ""])[:2]
    return (_apt(cmd) == "install" or (word, sub) in {("apk", "add"), ("npm", "ci"), ("yarn", "install"),
            ("pnpm", "install"), ("poetry", "install"), ("pipenv", "install"), ("uv", "sync"),
            ("bundle", "install"), ("composer", "install"), ("go", "mod"), ("dnf", "install"),
            ("yum", "install")} or (word == "npm" and sub in ("install", "i") and len(cmd) == 2)
            or cmd == ["yarn"])


def _cache_mount(inst: Instruction, target: str) -> bool:
    return "type=cache" in inst.flags.get("mount", "") and target in inst.flags.get("mount", "")


# --- the rules ----------------------------------------------------------------------------

def _image_findings(inst: Instruction, image: str, stage_names: set[str]) -> list[tuple]:
    if "$" in image or image.lower() == "scratch" or image.lower() in stage_names or "@sha256:" in image:
        return []
    name = image.split("/")[-1]
    if ":" not in name:
        return [("CK101", inst, f"the image `{image}` has no tag, so it means `:latest`, a different image "
                 "whenever it is updated", f"pin the version you tested: {image}:<version> (e.g. python:3.12-slim), "
                 "or a digest @sha256:...")]
    if name.endswith(":latest"):
        return [("CK102", inst, f"`{image}` names whatever was pushed last: the build can change without you",
                 "pin a version tag (e.g. :3.12-slim) or a digest (@sha256:...)")]
    return []


def _run_findings(inst: Instruction, stage_env: set[str]) -> list[tuple]:
    out, cmds = [], _commands(inst)
    text = inst.rest
    for cmd in cmds:
        if cmd[0] == "sudo":
            out.append(("CK206", inst, "sudo in RUN: RUN already runs as root (unless a USER says otherwise), and "
                        "most images have no sudo", "drop sudo; if a USER came before, switch with USER root "
                        "for this RUN and back afterwards"))
        cmd = _unsudo(cmd)
        if cmd and cmd[0] == "cd":
            out.append(("CK207", inst, "`cd` only lasts until the end of this RUN; later instructions start "
                        "in the WORKDIR again", "use WORKDIR /the/folder (it also creates the folder)"))
        sub = _apt(cmd)
        if sub in ("upgrade", "dist-upgrade", "full-upgrade"):
            out.append(("CK203", inst, f"apt-get {sub} changes packages the base image chose, differently on "
                        "every build", "use a newer base image tag instead of upgrading inside the image"))
        if sub == "install":
            if "--no-install-recommends" not in cmd and "APT::Install-Recommends=false" not in " ".join(cmd):
                out.append(("CK201", inst, "apt-get install also installs 'recommended' packages you did not "
                            "ask for", "add --no-install-recommends"))
            if not any(re.match(r"^(-[a-z]*y[a-z]*|-qq|--yes|--assume-yes)$", a) for a in cmd):
                out.append(("CK208", inst, "apt-get install without -y waits for an answer to 'Do you want to "
                            "continue?', which a build cannot give", "write apt-get install -y ..."))
            if not re.search(r"\brm\b[^;&|]*/var/lib/apt/lists", text) and not _cache_mount(inst, "/var/lib/apt"):
                out.append(("CK202", inst, "apt-get install without deleting /var/lib/apt/lists in the same RUN "
                            "keeps tens of MB of package lists in the image",
                            "end the same RUN with && rm -rf /var/lib/apt/lists/*"))
        pip = _pip_args(cmd)
        if pip is not None and "--no-cache-dir" not in pip and "PIP_NO_CACHE_DIR" not in stage_env \
                and not _cache_mount(inst, "/root/.cache"):
            out.append(("CK205", inst, "pip install keeps its download cache in the image, which makes it bigger",
                        "add --no-cache-dir: pip install --no-cache-dir ..."))
    apt_subs = {_apt(_unsudo(c)) for c in cmds} - {""}
    if apt_subs == {"update"}:
        out.append(("CK204", inst, "apt-get update alone: Docker caches this layer, so a later apt-get "
                    "install uses old package lists (and fails when they point at deleted files)",
                    "update and install in one RUN: apt-get update && apt-get install -y ..."))
    return out


def _secret_findings(inst: Instruction) -> list[tuple]:
    try:
        words = shlex.split(inst.rest)
    except ValueError:
        words = inst.rest.split()
    if inst.keyword == "ENV" and words and "=" not in words[0]:
        pairs = [(words[0], " ".join(words[1:]))]  # old form: ENV NAME value
    else:
        pairs = [tuple(w.split("=", 1)) if "=" in w else (w, "") for w in words]
    return [("CK301", inst, f"{inst.keyword} {name} puts a secret in the image: anyone who has the image can "
             "read it with `docker history` or `docker inspect`", "pass it when the container starts "
             f"(docker run -e {name}, or a mounted secrets file), never in the Dockerfile")
            for name, value in pairs
            if value.strip() and SECRET_NAME.search(name.upper()) and not NOT_A_SECRET.search(name.upper())]


def _file_findings(inst: Instruction, stage: Stage) -> list[tuple]:
    args = inst.exec_form if inst.exec_form is not None else inst.rest.split()
    sources, out = args[:-1], []
    if inst.keyword == "ADD":
        for src in sources:
            if URL.match(src):
                out.append(("CK401", inst, f"ADD {src} downloads on every cache miss, checks nothing and keeps the "
                            "file in its own layer", "RUN curl -fsSL <url> -o <file> (and delete it in the same "
                            "RUN when done), or download it beforehand and COPY it"))
            elif not ARCHIVE.search(src):
                out.append(("CK402", inst, f"ADD of `{src}`, which is not a .tar archive: ADD's extra powers "
                            "(unpacking, URLs) make it surprising", f"use COPY {' '.join(args)}"))
    if inst.keyword == "COPY" and "from" not in inst.flags and any(s in (".", "./") for s in sources):
        later = stage.instructions[stage.instructions.index(inst) + 1:]
        install = next((i for i in later if i.keyword == "RUN"
                        and any(_installs_dependencies(_unsudo(c)) for c in _commands(i))), None)
        if install:
            out.append(("CK404", inst, f"the whole project is copied before the install at line {install.line}: "
                        "any code change makes Docker run that install again", "copy only the dependency list "
                        "first (e.g. COPY requirements.txt .), install, then COPY . ."))
    return out


def _stage_findings(df: Dockerfile, stage: Stage, final: bool) -> list[tuple]:
    out, env = [], set()
    names = {s.name for s in df.stages[: stage.index] if s.name}
    for inst in stage.instructions:
        k = inst.keyword
        if k == "FROM":
            out += _image_findings(inst, stage.image, names)
        elif k == "COPY" and "from" in inst.flags and not inst.flags["from"].isdigit():
            out += _image_findings(inst, inst.flags["from"], names)
        if k == "ENV":
            env |= {w.split("=")[0] for w in inst.rest.split()}
        if k == "RUN":
            out += _run_findings(inst, env)
        if k in ("ENV", "ARG"):
            out += _secret_findings(inst)
        if k in ("ADD", "COPY"):
            out += _file_findings(inst, stage)
        if k == "WORKDIR" and not re.match(r"^([\"']?[/$]|[A-Za-z]:[\\/])", inst.rest):
            out.append(("CK403", inst, f"WORKDIR {inst.rest} is relative: where it ends up depends on the "
                        "WORKDIR set before it (maybe in the base image)",
                        f"write the full path: WORKDIR /{inst.rest}"))
        if k in ("CMD", "ENTRYPOINT") and inst.exec_form is None and not inst.rest.startswith("["):
            extra = " (and the arguments given to docker run are ignored)" if k == "ENTRYPOINT" else ""
            out.append(("CK501", inst, f"{k} in shell form: /bin/sh becomes PID 1 and may not pass SIGTERM on, so "
                        f"docker stop waits 10 s, then kills your program{extra}", f"use the exec form: {k} "
                        + json.dumps(_shell_words(inst.rest))))
        if k == "EXPOSE":
            out += _expose_findings(inst)
        if k == "MAINTAINER":
            out.append(("CK601", inst, "MAINTAINER is deprecated", f'LABEL org.opencontainers.image.authors='
                        f'"{inst.rest}"'))
    for k in ("CMD", "ENTRYPOINT"):
        found = [i for i in stage.instructions if i.keyword == k]
        out += [("CK502", i, f"this {k} is ignored: the {k} at line {found[-1].line} replaces it",
                  f"keep one {k} per stage (the last one wins)") for i in found[:-1]]
    if final:
        chain = _chain(df, stage)
        users = [i for s in chain for i in s.instructions if i.keyword == "USER"]
        if not users:
            out.append(("CK302", stage.instructions[0], "the final stage never sets USER, so the container runs "
                        "as root: a bug in your program can then change anything in the container",
                        "create a user and switch to it: RUN useradd --create-home app, then USER app"))
        elif re.split(r"[:\s]", users[-1].rest)[0] in ("root", "0"):
            out.append(("CK303", users[-1], "the last USER is root, so the container runs with every privilege",
                        "end with an unprivileged user (USER app); switch to root only for the RUNs that need it"))
        exposes = [i for i in stage.instructions if i.keyword == "EXPOSE"]
        if exposes and not any(i.keyword == "HEALTHCHECK" for s in chain for i in s.instructions):
            out.append(("CK504", exposes[0], "the image serves a port but has no HEALTHCHECK, so Docker cannot "
                        "tell a running server from a stuck one", "add e.g. HEALTHCHECK CMD curl -f "
                        "http://localhost:8000/ || exit 1 (or HEALTHCHECK NONE to say there is none)"))
    return out


def _chain(df: Dockerfile, stage: Stage) -> list[Stage]:
    """This stage and the earlier stages it is built FROM (settings like USER carry over)."""
    chain = [stage]
    while chain[-1].base_stage is not None and chain[-1].base_stage < chain[-1].index:
        chain.append(df.stages[chain[-1].base_stage])
    return chain


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _expose_findings(inst: Instruction) -> list[tuple]:
    out = []
    for spec in inst.rest.split():
        m = PORT.match(spec)
        if "$" in spec or m and 0 < int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 65535:
            continue
        if ":" in spec:
            out.append(("CK503", inst, f"EXPOSE {spec}: EXPOSE takes the container's port only; choosing the "
                        "host's port happens when you run it", f"EXPOSE {spec.split(':')[-1]}, then "
                        f"docker run -p {spec} ..."))
        else:
            out.append(("CK503", inst, f"EXPOSE {spec} is not a port: ports are numbers from 1 to 65535, "
                        "optionally /tcp or /udp", "write e.g. EXPOSE 8000 or EXPOSE 53/udp"))
    return out


# --- the API --------------------------------------------------------------------------------

def _read(source: str | Path) -> tuple[str, str]:
    """(text, name) from Dockerfile text, a path, or a folder with a Dockerfile in it."""
    if isinstance(source, str) and ("\n" in source or not source.strip() or re.search(r"\s", source.strip())
                                    and not Path(source).exists()):
        return source, "<text>"
    path = Path(source)
    if path.is_dir():
        path = path / "Dockerfile"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerfileError(f"cannot read the Dockerfile {path}: {getattr(exc, 'strerror', None) or exc}",
                              fix="check the path (a folder works too: its Dockerfile is used)") from None


def lint(source: str | Path) -> Report:
    """Check a Dockerfile, given as its text, a path, or a folder that contains one."""
    text, name = _read(source)
    df = parse(text)
    found = [("CK000", p.line, p.text, p.reason, p.fix) for p in df.problems]
    if "syntax" in df.directives:
        line, value = df.directives["syntax"]
        found.append(("CK602", line, f"# syntax={value}", f"the syntax directive makes docker build pull "
                      f"{value}, which this course's machines cannot do", "delete the line: the built-in "
                      "Dockerfile support understands everything the course uses"))
    for stage in df.stages:
        for rule, inst, reason, fix in _stage_findings(df, stage, final=stage is df.stages[-1]):
            if rule not in inst.ignore:
                found.append((rule, inst.line, inst.text, reason, fix))
    findings = [Finding(rule, RULES[rule], line, text, reason, fix) for rule, line, text, reason, fix in found]
    unique = {(f.rule, f.line, f.reason): f for f in findings}  # one `cd` per RUN is enough
    return Report(sorted(unique.values(), key=lambda f: (f.line, f.rule)), name)


def main(*, paths: list[str] | tuple[str, ...] = ("Dockerfile",), as_json: bool = False) -> int:
    """Lint each path and print the results; 1 when any has an error, else 0."""
    reports = [lint(Path(p)) for p in paths]
    if as_json:
        print(json.dumps({"ok": all(r.ok for r in reports), "reports": [r.to_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            print(f"{r.source}:\n{textwrap.indent(str(r), '  ')}" if len(reports) > 1 else r)
    return 0 if all(r.ok for r in reports) else 1
