"""The record of a build run by :func:`coursekit.cicd.build.runner.run`: phases, logs, artifact, reports.

A :class:`BuildResult` answers what CodeBuild's ``batch-get-builds`` answers about a build
(``buildStatus``, each phase's ``phaseType``, ``phaseStatus``, ``durationInSeconds`` and
context message, ``exportedEnvironmentVariables``) plus what only a local run can give: each
phase's log and exit code, and each command's. In a notebook it shows as a small table of
phases coloured by status. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from .artifacts import ArtifactResult, ReportResult
from ...ui.palette import BAD, GOOD, MUTED, WARN

SUCCEEDED, FAILED, TIMED_OUT, SKIPPED = "SUCCEEDED", "FAILED", "TIMED_OUT", "SKIPPED"
COLOURS = {SUCCEEDED: GOOD, FAILED: BAD, TIMED_OUT: WARN, SKIPPED: MUTED}


@dataclass
class CommandResult:
    """One command of a phase (``block`` is ``commands`` or ``finally``; ``exit_code`` None: stopped)."""

    command: str
    exit_code: int | None
    seconds: float
    block: str = "commands"


@dataclass
class PhaseResult:
    """One phase: ``name`` is CodeBuild's phase type (``INSTALL``, ``BUILD``, ``UPLOAD_ARTIFACTS``...).

    ``status`` is CodeBuild's (``SUCCEEDED``, ``FAILED``, ``TIMED_OUT``) or ``SKIPPED`` for a
    phase the build did not reach (CodeBuild leaves such phases out of its list).
    ``exit_code`` is the failing command's, 0 when every command passed, None when nothing ran.
    """

    name: str
    status: str
    seconds: float = 0.0
    exit_code: int | None = None
    log: str = ""
    commands: list[CommandResult] = field(default_factory=list)
    message: str = ""

    def __str__(self) -> str:
        code = "" if self.exit_code is None else f", exit code {self.exit_code}"
        note = f" - {self.message}" if self.message else ""
        return f"{self.name:17} {self.status:10} {self.seconds:6.2f} s{code}{note}"


@dataclass
class BuildResult:
    """Everything about one build. ``succeeded`` is True only when every phase succeeded."""

    build_id: str
    arn: str
    number: int
    project: str
    status: str
    image: str
    phases: list[PhaseResult] = field(default_factory=list)
    log: str = ""
    exported: dict[str, str] = field(default_factory=dict)
    artifact: ArtifactResult | None = None
    reports: dict[str, ReportResult] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def phase(self, name: str) -> PhaseResult:
        """A phase by name, as in the buildspec (``"pre_build"``) or as CodeBuild writes it (``"PRE_BUILD"``)."""
        for p in self.phases:
            if p.name == name.upper():
                return p
        raise KeyError(f"no phase {name!r}: the phases are {', '.join(p.name for p in self.phases)}")

    def __repr__(self) -> str:
        return f"<BuildResult {self.build_id} #{self.number}: {self.status}>"

    def __str__(self) -> str:
        lines = [f"build {self.build_id} (#{self.number}): {self.status} in {self.seconds:.1f} s"]
        lines += ["  " + str(p) for p in self.phases]
        if self.artifact is not None:
            where = self.artifact.url or "not uploaded"
            lines.append(f"  artifact {self.artifact.key}: {len(self.artifact.names)} files, {where}")
        lines += ["  " + str(r) for r in self.reports.values()]
        if self.exported:
            lines.append("  exported: " + ", ".join(f"{k}={v!r}" for k, v in self.exported.items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        def badge(status: str) -> str:
            return (f'<span style="color:white;background:{COLOURS.get(status, MUTED)};padding:1px 6px;'
                    f'border-radius:3px;font-size:90%">{html.escape(status)}</span>')

        rows = "".join(
            f"<tr><td><code>{html.escape(p.name)}</code></td><td>{badge(p.status)}</td>"
            f"<td style='text-align:right'>{p.seconds:.2f} s</td>"
            f"<td style='text-align:right'>{'' if p.exit_code is None else p.exit_code}</td>"
            f"<td style='text-align:left'>{html.escape(p.message)}</td></tr>" for p in self.phases)
        extra = []
        if self.artifact is not None:
            extra.append(f"artifact <code>{html.escape(self.artifact.url or self.artifact.key)}</code>: "
                         f"{len(self.artifact.names)} files ({self.artifact.size:,} bytes)"
                         + ("" if self.artifact.uploaded else " - not uploaded"))
        for r in self.reports.values():
            counts = ", ".join(f"{n} {s.lower()}" for s, n in r.counts.items() if n) or "no tests"
            extra.append(f"report <code>{html.escape(r.name)}</code>: {badge(r.status)} {html.escape(counts)}")
        if self.exported:
            extra.append("exported: " + ", ".join(f"<code>{html.escape(k)}={html.escape(v)}</code>"
                                                  for k, v in self.exported.items()))
        return (f"<div><b>Build <code>{html.escape(self.build_id)}</code> (#{self.number})</b> "
                f"{badge(self.status)} in {self.seconds:.1f} s"
                "<table><tr><th>phase</th><th>status</th><th>duration</th><th>exit code</th><th style='text-align:left'>context</th></tr>"
                f"{rows}</table>" + "".join(f"<div>{x}</div>" for x in extra) + "</div>")
