"""Read and check an AWS CodeBuild ``buildspec.yml`` (version 0.2) before anything runs.

``spec = coursekit.cicd.build.spec.load("project/")`` (a folder, a file, or the YAML text itself)
returns a :class:`Buildspec`; a mistake raises :class:`BuildspecError`, whose message names
the offending key as a path (``phases.build.commands``) with its line, and says what to write
instead. :func:`coursekit.cicd.build.runner.run` runs the result for real, in a container.

What is checked, following AWS's "Build specification reference for CodeBuild":

* ``version`` must be ``0.2`` (0.1 ran every command in a new shell; it is refused here);
* top-level keys, ``env`` keys, phase names (``install``, ``pre_build``, ``build``,
  ``post_build``) and the keys inside each phase must be ones CodeBuild knows; a typo gets a
  "did you mean" suggestion;
* ``commands`` and ``finally`` are lists of commands, each a piece of text (an unquoted
  ``- echo a: b`` is a YAML mapping, not a command: the error says to quote it);
  ``commands`` is required in ``pre_build``, ``build`` and ``post_build`` when they appear;
* ``on-failure`` is ``ABORT`` or ``CONTINUE``;
* ``env.variables`` map names to plain values; names starting with ``CODEBUILD_`` are
  reserved; ``env.exported-variables`` may not export ``AWS_...`` variables; ``env.shell`` is
  ``bash`` or ``/bin/sh``;
* ``artifacts.files`` and ``reports.<group>.files`` are lists of relative paths or globs.

The YAML is read by :mod:`coursekit.cicd.yamlcheck`, which keeps each key's line for the errors.

Where this reader differs from CodeBuild (the runner's own differences are listed in
:mod:`coursekit.cicd.build.runner`):

* Every value is read as the text that was written: ``VERSION: 1.10`` is ``"1.10"`` (not the
  number 1.1) and ``yes``/``no`` are words, except where a yes/no is expected.
* A key that appears twice in one mapping is an error (YAML readers often keep the last).
* Accepted but ignored, each with a note in :attr:`Buildspec.warnings`: ``run-as``, ``proxy``,
  ``batch``, ``cache``, ``env.git-credential-helper``, ``runtime-versions`` (the course's
  build image has one Python; CodeBuild prints a similar warning on images without runtime
  selection), ``artifacts.secondary-artifacts``, ``artifacts.enable-symlinks``.
* Refused, because ignoring them would change what the build does: ``env.parameter-store``
  and ``env.secrets-manager`` (put the value in ``env.variables`` or ``project_env``), the
  ``RETRY...`` values of ``on-failure``, and report formats other than ``JUNITXML``.
* Paths in ``files`` must stay inside the source folder (no leading ``/``, no ``..``).

Lesson: ``08-ci-cd`` (CodeBuild buildspecs, run for real).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ...errors import CICDError
from ..yamlcheck import Checker, kind

PHASES = ("install", "pre_build", "build", "post_build")
ON_FAILURE = ("ABORT", "CONTINUE")
SHELLS = {"bash": "bash", "/bin/sh": "/bin/sh"}
DEFAULT_NAME = "buildspec.yml"
REPORT_FORMATS = ("JUNITXML", "CUCUMBERJSON", "NUNITXML", "NUNIT3XML", "TESTNGXML", "VISUALSTUDIOTRX",
                  "CLOVERXML", "COBERTURAXML", "JACOCOXML", "SIMPLECOV")

_TOP = ("version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache")
_ENV = ("shell", "variables", "parameter-store", "exported-variables", "secrets-manager", "git-credential-helper")
_PHASE = ("run-as", "on-failure", "runtime-versions", "commands", "finally")
_ARTIFACTS = ("files", "name", "discard-paths", "base-directory", "exclude-paths", "enable-symlinks", "s3-prefix",
              "secondary-artifacts")
_REPORT = ("files", "base-directory", "discard-paths", "file-format")
_IGNORED = {"run-as": "commands run as root, the image's default user", "proxy": "there is no proxy here",
            "batch": "batch builds are not supported", "cache": "nothing is cached between builds",
            "git-credential-helper": "the build has no network to fetch from",
            "runtime-versions": "Skipping install of runtimes: the course's build image has one Python",
            "secondary-artifacts": "only the primary artifact is collected",
            "enable-symlinks": "symbolic links are left out of the zip"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class BuildspecError(CICDError):
    """A buildspec CodeBuild (or this runner) would not accept; ``key`` is the offending key's path."""

    def __init__(self, problem: str, fix: str, key: str = "", line: int | None = None):
        super().__init__(problem, fix)
        self.key, self.line = key, line


@dataclass(frozen=True)
class Phase:
    """One of the four command phases, as written in the buildspec."""

    name: str
    commands: tuple[str, ...] = ()
    finally_: tuple[str, ...] = ()
    on_failure: str | None = None


@dataclass(frozen=True)
class FileSet:
    """Files to collect after the build: ``artifacts`` or one report group."""

    files: tuple[str, ...]
    base_directory: str | None = None
    discard_paths: bool = False
    exclude_paths: tuple[str, ...] = ()
    name: str | None = None          # artifacts: the zip's name (shell expansion at build time)
    s3_prefix: str | None = None     # artifacts: a folder in the bucket
    file_format: str = "JUNITXML"    # reports


@dataclass(frozen=True)
class Buildspec:
    """A checked buildspec. Build one with :func:`load`."""

    version: str
    phases: dict[str, Phase]
    shell: str = "/bin/sh"
    variables: dict[str, str] = field(default_factory=dict)
    exported_variables: tuple[str, ...] = ()
    artifacts: FileSet | None = None
    reports: dict[str, FileSet] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    source: str = "<text>"
    text: str = ""

    def describe(self) -> str:
        """What a build of this buildspec would run, phase by phase (for no-engine mode)."""
        lines = [f"buildspec {self.source} (version {self.version}, shell {self.shell})"]
        if self.variables:
            lines.append("variables: " + ", ".join(f"{k}={v!r}" for k, v in self.variables.items()))
        for name in PHASES:
            ph = self.phases.get(name)
            if ph is None:
                lines.append(f"{name}: (no commands)")
                continue
            lines.append(f"{name} (on-failure {ph.on_failure}):" if ph.on_failure else f"{name}:")
            lines += [f"  $ {c}" for c in ph.commands] + [f"  finally $ {c}" for c in ph.finally_]
        if self.artifacts:
            lines.append(f"artifacts: {', '.join(self.artifacts.files)}"
                         + (f" from {self.artifacts.base_directory}" if self.artifacts.base_directory else ""))
        for group, rep in self.reports.items():
            lines.append(f"report {group}: {', '.join(rep.files)} ({rep.file_format})")
        return "\n".join(lines + [f"note: {w}" for w in self.warnings])


# --------------------------------------------------------------------------- the buildspec's parts


def _env(r: Checker, env: Any) -> dict:
    env = r.mapping(env, "env", _ENV, ignored=_IGNORED)
    out: dict[str, Any] = {"shell": "/bin/sh", "variables": {}, "exported": ()}
    for key in ("parameter-store", "secrets-manager"):
        if key in env:
            r.fail(f"env.{key}", f"env.{key} is not supported by the course's build runner",
                   "put the value in env.variables, or pass it with project_env= / env_overrides=")
    if "shell" in env:
        if env["shell"] not in SHELLS:
            r.fail("env.shell", f"env.shell {env['shell']!r} is not a Linux shell CodeBuild supports",
                   "use bash or /bin/sh")
        out["shell"] = SHELLS[env["shell"]]
    if env.get("variables") is not None:
        variables = r.mapping(env["variables"], "env.variables")
        for name, value in variables.items():
            key = f"env.variables.{name}"
            if not _NAME.match(name):
                r.fail(key, f"{key}: {name!r} is not a valid environment variable name",
                       "use letters, digits and _, not starting with a digit")
            if name.startswith("CODEBUILD_"):
                r.fail(key, f"{key}: names starting with CODEBUILD_ are reserved for CodeBuild",
                       "pick another name")
            if value is None or isinstance(value, (list, dict)):
                r.fail(key, f"{key} is {kind(value)}: a variable's value is one piece of text",
                       f'write {name}: "value" (or {name}: "" for an empty one)')
        out["variables"] = dict(variables)
    if "exported-variables" in env:
        names = r.text_list(env["exported-variables"], "env.exported-variables", "variable names")
        for i, name in enumerate(names):
            if not _NAME.match(name):
                r.fail(f"env.exported-variables[{i}]", f"env.exported-variables[{i}] {name!r} is not a variable name",
                       "list variable names")
            if name.startswith("AWS_"):
                r.fail(f"env.exported-variables[{i}]", f"env.exported-variables[{i}]: {name} cannot be exported: "
                       "CodeBuild does not export variables that start with AWS_", "copy it into a variable with another name and export that")
        out["exported"] = names
    return out


def _phase(r: Checker, name: str, value: Any) -> Phase:
    key = f"phases.{name}"
    if value is None:
        value = {}
    value = r.mapping(value, key, _PHASE, ignored=_IGNORED,
                      fix=f"put the commands under commands:, indented below {key}")
    if "commands" not in value and name != "install":
        r.fail(key, f"{key} has no commands: CodeBuild requires a commands list in {name} when the phase appears",
               f"add commands: with at least one command, or remove {name}")
    commands = r.text_list(value["commands"], f"{key}.commands") if "commands" in value else ()
    final = r.text_list(value["finally"], f"{key}.finally") if "finally" in value else ()
    on_failure = value.get("on-failure")
    if on_failure is not None:
        if str(on_failure).upper().startswith("RETRY"):
            r.fail(f"{key}.on-failure", f"{key}.on-failure {on_failure} (retrying the build) is not supported by "
                   "the course's build runner", "use ABORT or CONTINUE")
        if on_failure not in ON_FAILURE:
            near = [v for v in ON_FAILURE if v == str(on_failure).upper()]
            r.fail(f"{key}.on-failure", f"{key}.on-failure must be ABORT or CONTINUE, not {on_failure!r}",
                   f"did you mean {near[0]}? (capital letters)" if near else "write on-failure: ABORT (or CONTINUE)")
    return Phase(name, commands, final, on_failure)


def _paths(r: Checker, value: Any, key: str) -> tuple[str, ...]:
    paths = r.text_list(value, key, "paths")
    for i, p in enumerate(paths):
        if p.startswith("/") or ".." in p.split("/"):
            r.fail(f"{key}[{i}]", f"{key}[{i}] {p!r} points outside the source folder",
                   "write paths relative to the source folder (CODEBUILD_SRC_DIR)")
    return paths


def _fileset(r: Checker, value: Any, key: str, allowed: tuple[str, ...]) -> FileSet:
    value = r.mapping(value, key, allowed, ignored=_IGNORED if allowed == _ARTIFACTS else None)
    if "files" not in value:
        r.fail(key, f"{key} has no files list", "add files: with the paths to collect, e.g. - '**/*'")
    base = value.get("base-directory")
    if base is not None and (not isinstance(base, str) or base.startswith("/") or ".." in base.split("/")):
        r.fail(f"{key}.base-directory", f"{key}.base-directory must be a folder inside the source folder",
               "write a relative folder name, e.g. base-directory: dist")
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or "\n" in name.strip()):
        r.fail(f"{key}.name", f"{key}.name must be one line of text", "e.g. name: app-$CODEBUILD_BUILD_NUMBER.zip")
    fmt = str(value.get("file-format") or "JUNITXML").upper()
    if fmt not in REPORT_FORMATS:
        r.fail(f"{key}.file-format", f"{key}.file-format {value['file-format']!r} is not a report format CodeBuild "
               "knows", f"use one of {', '.join(REPORT_FORMATS)}")
    if fmt != "JUNITXML":
        r.fail(f"{key}.file-format", f"{key}.file-format {fmt} is not supported by the course's build runner",
               "write the test results as JUnit XML (pytest --junitxml=...) and use JUNITXML")
    return FileSet(_paths(r, value["files"], f"{key}.files"), base.strip("/") if base else None,
                   r.yes_no(value["discard-paths"], f"{key}.discard-paths") if "discard-paths" in value else False,
                   _paths(r, value["exclude-paths"], f"{key}.exclude-paths") if "exclude-paths" in value else (),
                   name.strip() if name else None, (value.get("s3-prefix") or "").strip("/") or None, fmt)


def parse(text: str, source: str = "<text>") -> Buildspec:
    """Check buildspec text (YAML) and return a :class:`Buildspec`; raise :class:`BuildspecError`."""
    r = Checker(source, BuildspecError, "CodeBuild", "the buildspec")
    data = r.load(text)
    if data is None:
        r.fail("", "the buildspec is empty", "start it with version: 0.2 and a phases: section")
    data = r.mapping(data, "", _TOP, ignored=_IGNORED, fix="start with version: 0.2, then phases:")
    version = data.get("version")
    if version is None:
        r.fail("version", "the buildspec has no version", "add version: 0.2 as its first line")
    try:
        number = float(str(version))
    except ValueError:
        number = None
    if number == 0.1:
        r.fail("version", "version 0.1 is not supported: it runs every command in a separate shell",
               "use version: 0.2 (commands then share one shell, so cd and export carry over)")
    if number != 0.2:
        r.fail("version", f"version {version!r} is not a buildspec version CodeBuild knows", "use version: 0.2")
    if "phases" not in data:
        r.fail("phases", "the buildspec has no phases", "add phases: with at least a build: phase and its commands")
    phases_in = r.mapping(data["phases"], "phases", PHASES, noun="phase")
    env = _env(r, data["env"]) if data.get("env") is not None else {"shell": "/bin/sh", "variables": {}, "exported": ()}
    reports = {}
    if data.get("reports") is not None:
        for group, value in r.mapping(data["reports"], "reports").items():
            reports[group] = _fileset(r, value, f"reports.{group}", _REPORT)
    artifacts = _fileset(r, data["artifacts"], "artifacts", _ARTIFACTS) if data.get("artifacts") is not None else None
    phases = {name: _phase(r, name, phases_in[name]) for name in PHASES if name in phases_in}
    return Buildspec("0.2", phases, env["shell"], env["variables"], env["exported"], artifacts, reports,
                     tuple(r.warnings), source, text)


def load(spec: Union[str, Path, Buildspec]) -> Buildspec:
    """A :class:`Buildspec` from a folder (its ``buildspec.yml``), a file, YAML text, or a Buildspec."""
    if isinstance(spec, Buildspec):
        return spec
    if isinstance(spec, str) and (not spec.strip() or "\n" in spec
                                  or ":" in spec and not spec.endswith((".yml", ".yaml"))):
        return parse(spec)
    if not isinstance(spec, (str, Path)):
        raise BuildspecError(f"a buildspec is a file, a folder or YAML text, not {type(spec).__name__}",
                             "pass the path of buildspec.yml (or its folder), or the YAML as a str")
    path = Path(spec)
    if path.is_dir():
        path = path / DEFAULT_NAME
    if not path.is_file():
        raise BuildspecError(f"there is no buildspec at {path}",
                             f"CodeBuild looks for {DEFAULT_NAME} at the top of the source folder: create it there, "
                             "or pass spec= with the buildspec's path or text")
    return parse(path.read_text(encoding="utf-8"), str(path))
