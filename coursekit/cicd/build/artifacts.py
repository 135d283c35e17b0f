"""What a build leaves behind: its artifact zip (stored in S3) and its test reports.

After the command phases, :mod:`coursekit.cicd.build.runner` copies the build's source folder out
of the container (one ``get_archive``, read as a stream) and this module picks files the way
CodeBuild's ``artifacts`` and ``reports`` sections describe:

* ``files`` are paths or globs relative to the source folder (or to ``base-directory``):
  ``*`` and ``?`` stay within one folder, ``**`` spans any number of folders (``'**/*'`` is
  everything), ``dist/*`` is the files directly in ``dist``; a plain folder name with no
  wildcard takes everything below it (our choice: AWS's reference does not say);
* ``base-directory`` (itself possibly a glob such as ``'build*'``) is where the paths start;
  the matching folders are not part of the names in the zip;
* ``discard-paths: yes`` keeps only file names (two files with one name: the later wins, with
  a warning); ``exclude-paths`` leaves matching files out;
* no file matched: ``CLIENT_ERROR: no matching artifact paths found``, as CodeBuild says.

The zip goes to an S3 bucket of the AWS sandbox (moto), uploaded from this process. Reports
must be JUnit XML; each becomes pass/fail counts with CodeBuild's test-case statuses
(``SUCCEEDED``, ``FAILED``, ``ERROR``, ``SKIPPED``) and a report status (``SUCCEEDED`` when
every case passed, ``FAILED`` otherwise, ``INCOMPLETE`` when no file could be read).

Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import io
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterable

from .spec import FileSet

MAX_REPORT_BYTES = 5_000_000  # a JUnit file bigger than this is not read
TEST_STATUSES = ("SUCCEEDED", "FAILED", "ERROR", "SKIPPED", "UNKNOWN")


def glob_regex(pattern: str) -> re.Pattern:
    """A CodeBuild path glob as a regular expression over ``/``-separated relative paths."""
    parts, out = pattern.strip().strip("/").split("/"), []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        seg, j = "", 0
        while j < len(part):
            c = part[j]
            if c == "*":
                seg += "[^/]*"
            elif c == "?":
                seg += "[^/]"
            elif c == "[" and "]" in part[j + 1:]:
                k = part.index("]", j + 1)
                body = part[j + 1:k]
                seg += "[" + ("^" + re.escape(body[1:]) if body.startswith("!") else re.escape(body)) + "]"
                j = k
            else:
                seg += re.escape(c)
            j += 1
        out.append(seg + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def _is_literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[")


class Picker:
    """Decides, for one file path, whether a FileSet takes it and under which name."""

    def __init__(self, fs: FileSet):
        self.fs = fs
        self.base = glob_regex(fs.base_directory) if fs.base_directory else None
        self.files = [(glob_regex(p), _is_literal(p)) for p in fs.files]
        self.excluded = [glob_regex(p) for p in fs.exclude_paths]

    def _take(self, rel: str) -> bool:
        for rx, literal in self.files:
            if rx.match(rel):
                return True
            if literal:  # a folder named outright: everything below it
                parts = rel.split("/")
                if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts))):
                    return True
        return False

    def name(self, path: str) -> str | None:
        """The name ``path`` (relative to the source folder) gets in the output, or None."""
        candidates = [path]
        if self.base is not None:
            parts = path.split("/")
            bases = ["/".join(parts[:n]) for n in range(1, len(parts)) if self.base.match("/".join(parts[:n]))]
            candidates = [path[len(b) + 1:] for b in bases]
        for rel in candidates:
            if self._take(rel) and not any(rx.match(rel) for rx in self.excluded):
                return rel.rsplit("/", 1)[-1] if self.fs.discard_paths else rel
        return None


@dataclass
class Collected:
    """Files picked from one pass over the build's source folder."""

    artifact_files: dict[str, tuple[bytes, int, float]] = field(default_factory=dict)  # name -> data, mode, mtime
    report_files: dict[str, dict[str, bytes]] = field(default_factory=dict)            # group -> name -> data
    warnings: list[str] = field(default_factory=list)


def collect(chunks: Iterable[bytes], artifacts: FileSet | None, reports: dict[str, FileSet]) -> Collected:
    """Read a ``get_archive`` tar stream of the source folder; keep what artifacts and reports ask for."""
    out = Collected(report_files={g: {} for g in reports})
    art = Picker(artifacts) if artifacts else None
    reps = {g: Picker(fs) for g, fs in reports.items()}
    with tarfile.open(fileobj=_Stream(chunks), mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            path = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not path:
                continue
            wanted_art = art.name(path) if art else None
            wanted_rep = {g: p.name(path) for g, p in reps.items()}
            if wanted_art is None and not any(wanted_rep.values()):
                continue
            data = tar.extractfile(member).read()
            if wanted_art is not None:
                if wanted_art in out.artifact_files:
                    out.warnings.append(f"two files are named {wanted_art} in the artifact (discard-paths): "
                                        f"{path} replaces the first")
                out.artifact_files[wanted_art] = (data, member.mode, member.mtime)
            for group, name in wanted_rep.items():
                if name is not None:
                    out.report_files[group][name] = data
    return out


class _Stream(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (what ``get_archive`` returns)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it, self._left = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._left:
            try:
                self._left = next(self._it)
            except StopIteration:
                return 0
        n = min(len(buf), len(self._left))
        buf[:n], self._left = self._left[:n], self._left[n:]
        return n


def make_zip(files: dict[str, tuple[bytes, int, float]]) -> bytes:
    """A zip of the picked files, names sorted, file modes kept (so scripts stay executable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            data, mode, mtime = files[name]
            info = zipfile.ZipInfo(name, time.localtime(max(mtime, 315532800))[:6])
            info.external_attr = (mode & 0o7777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


# --------------------------------------------------------------------------- results


@dataclass
class ArtifactResult:
    """The build's artifact: a zip of ``names``, stored at ``s3://bucket/key`` when uploaded."""

    names: list[str]
    key: str
    bucket: str | None = None
    size: int = 0
    uploaded: bool = False
    message: str = ""
    ok: bool = True
    data: bytes = field(default=b"", repr=False)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else ""


@dataclass
class TestCase:
    suite: str
    name: str
    status: str
    seconds: float = 0.0
    message: str = ""


@dataclass
class ReportResult:
    """One report group's test results, counted the way CodeBuild counts them."""

    name: str
    group: str
    status: str
    counts: dict[str, int]
    files: list[str] = field(default_factory=list)
    cases: list[TestCase] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {s.lower()}" for s, n in self.counts.items() if n)
        return f"report {self.name}: {self.status} ({self.total} tests: {parts or 'none'})"


def junit_report(name: str, group: str, files: dict[str, bytes]) -> ReportResult:
    """Count the test cases in JUnit XML files (``<testsuites>`` or ``<testsuite>`` at the top)."""
    import xml.etree.ElementTree as ET

    counts = {s: 0 for s in TEST_STATUSES}
    cases: list[TestCase] = []
    problems = []
    for fname, data in sorted(files.items()):
        if len(data) > MAX_REPORT_BYTES:
            problems.append(f"{fname} is larger than {MAX_REPORT_BYTES // 1_000_000} MB")
            continue
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            problems.append(f"{fname} is not XML ({exc})")
            continue
        if root.tag not in ("testsuites", "testsuite"):
            problems.append(f"{fname} is not JUnit XML (its top element is <{root.tag}>)")
            continue
        for suite in root.iter("testsuite"):
            for case in suite.findall("testcase"):
                status, message = "SUCCEEDED", ""
                for tag, st in (("failure", "FAILED"), ("error", "ERROR"), ("skipped", "SKIPPED")):
                    el = case.find(tag)
                    if el is not None:
                        status, message = st, (el.get("message") or el.text or "").strip()[:500]
                        break
                try:
                    secs = float(case.get("time") or 0)
                except ValueError:
                    secs = 0.0
                counts[status] += 1
                cases.append(TestCase(suite.get("name", ""), case.get("name", ""), status, secs, message))
    read = len(files) - len(problems)
    if not files or not read:
        status = "INCOMPLETE"
    else:
        status = "SUCCEEDED" if counts["SUCCEEDED"] + counts["SKIPPED"] == sum(counts.values()) else "FAILED"
    message = "; ".join(problems) if problems else ("" if files else "no report files matched")
    return ReportResult(name, group, status, {k: v for k, v in counts.items() if v or k in ("SUCCEEDED", "FAILED")},
                        sorted(files), cases, sum(c.seconds for c in cases), message)


def store(files: dict[str, tuple[bytes, int, float]], key: str, sandbox: Any, bucket: str, *,
          create_bucket: bool) -> ArtifactResult:
    """Zip ``files`` and put the zip at ``s3://bucket/key`` in the sandbox (``ok`` False, with CodeBuild's
    ``CLIENT_ERROR`` message, when nothing matched or S3 refused). Without a sandbox the zip stays in ``data``."""
    art = ArtifactResult(sorted(files), key)
    if not files:
        art.ok, art.message = False, "CLIENT_ERROR: no matching artifact paths found"
        return art
    art.data = make_zip(files)
    art.size = len(art.data)
    if sandbox is None:
        art.message = "no AWS sandbox: the zip was not uploaded (result.artifact.data holds it)"
        return art
    s3 = sandbox.client("s3")
    try:
        if create_bucket:
            try:
                s3.head_bucket(Bucket=bucket)
            except Exception:
                kw = {} if sandbox.region == "us-east-1" else {
                    "CreateBucketConfiguration": {"LocationConstraint": sandbox.region}}
                s3.create_bucket(Bucket=bucket, **kw)
        s3.put_object(Bucket=bucket, Key=key, Body=art.data, ContentType="application/zip")
    except Exception as exc:
        art.ok, art.message = False, f"CLIENT_ERROR: uploading s3://{bucket}/{key} failed: {exc}"
        return art
    art.bucket, art.uploaded = bucket, True
    art.message = f"Uploaded {len(art.names)} files as {art.url} ({art.size:,} bytes)"
    return art
