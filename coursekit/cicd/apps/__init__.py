"""The small sample apps that lessons ``08-ci-cd`` and ``13-capstone`` build, test and deploy.

Each app is a folder beside this file; the lessons never touch it, they work on a copy:

* ``greeter``: a tiny web app (standard-library Python): ``app.py`` answers
  ``Hello, <name>! (greeter 1.0)`` and which container served it, ``/health`` answers ``ok``;
  ``test_app.py`` (unit tests) and ``test_smoke.py`` (starts the server, asks it over HTTP);
  ``buildspec.yml`` (the Build stage: unit tests, JUnit report, artifact),
  ``buildspec-smoke.yml`` (the Test stage), a ``Dockerfile`` FROM ``coursekit/python:3.11``,
  and a ``Jenkinsfile`` with the same build for Jenkins, to read beside the buildspec.
* ``wordcount``: a small library with tests and nothing else, the subject of exercise 08's
  buildspec question (it builds into a runnable ``wordcount.pyz``).

``workspace("greeter", git_repo=True)`` copies an app into a fresh folder of the session's scratch
space (removed by ``ck.finish()`` or at exit) and, with ``git_repo=True``, makes it a git repository
with one commit, the source a pipeline's ``coursekit-Git`` action fetches. :func:`change` edits a
file and commits it, as a developer pushing a change would. :func:`summary` turns a build result
into plain data (what the exercises' checks compare), :func:`first_failure` names the phase and
command that broke a build, :func:`compare` shows two files side by side, and :class:`Listener`
asks a service who answers while a pipeline rolls it to a new version (the capstone).
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import CICDError
from ...ui.palette import CODE_BACKGROUND

APPS_DIR = Path(__file__).resolve().parent
#: Who commits in the lessons' throw-away repositories (never the learner's own git identity).
AUTHOR = ("Course Learner", "learner@example.com")


def names() -> list[str]:
    """The sample apps there are."""
    return sorted(p.name for p in APPS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def path(name: str) -> Path:
    """The folder of the app ``name`` (read it, don't change it: lessons work on a :func:`workspace`)."""
    folder = APPS_DIR / str(name)
    if not isinstance(name, str) or name not in names():
        raise CICDError(f"there is no sample app called {name!r}", f"pick one of: {', '.join(names())}")
    return folder


def read(name: str, file: str) -> str:
    """The text of one file of an app, e.g. ``read("greeter", "buildspec.yml")``."""
    target = path(name) / file
    if not target.is_file():
        files = ", ".join(sorted(p.name for p in path(name).iterdir() if p.is_file()))
        raise CICDError(f"the app {name!r} has no file {file!r}", f"its files are: {files}")
    return target.read_text()


def git(repo: str | Path, *args: str) -> str:
    """Run ``git`` in ``repo`` with the course's author identity; returns what it printed."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}",
                              "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, timeout=60,
                             check=False)
    except FileNotFoundError:
        raise CICDError("git is not installed, and the pipeline's source is a git repository",
                        "install git (Debian/Ubuntu: apt-get install git; macOS: xcode-select --install)") from None
    if out.returncode:
        raise CICDError(f"git {' '.join(args)} failed in {repo}: {out.stderr.strip() or out.stdout.strip()}",
                        "look at the repository with `git status` in a terminal")
    return out.stdout.strip()


def workspace(name: str, *, git_repo: bool = False, into: str | Path | None = None) -> Path:
    """A fresh copy of the app ``name``; with ``git_repo=True`` a git repository (branch ``main``, one commit).

    ``into``: a folder to create it in (default: the session's scratch folder, removed by ``ck.finish()``).
    """
    src = path(name)
    if into is None:
        from ...docker import engine

        into = engine.scratch_dir()
    dest = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=into))
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                                                  ".pytest_cache"))
    if git_repo:
        git(dest, "init", "-q", "-b", "main")
        git(dest, "add", ".")
        git(dest, "commit", "-q", "-m", "first version")
    return dest


def change(repo: str | Path, file: str, old: str, new: str, *, commit: str | None = None) -> str | None:
    """Replace ``old`` by ``new`` in ``repo/file``; with ``commit``, commit it with that message.

    Returns the new commit's short id (or None without ``commit``). ``old`` must be in the file
    exactly once, so an edit never lands somewhere unexpected.
    """
    target = Path(repo) / file
    if not target.is_file():
        raise CICDError(f"{target} does not exist", "check the repository folder and the file's name")
    text = target.read_text()
    count = text.count(old)
    if count != 1:
        raise CICDError(f"{file} contains {old!r} {count} times, not once",
                        "give a longer piece of text that appears exactly once")
    target.write_text(text.replace(old, new))
    if commit is None:
        return None
    git(repo, "commit", "-q", "-am", commit)
    return git(repo, "rev-parse", "--short", "HEAD")


def summary(result: Any) -> dict:
    """A build result (:class:`~coursekit.cicd.build.result.BuildResult`) as plain data: status, phases,
    artifact file names, report counts. What exercise checks compare, and JSON-safe."""
    art = result.artifact
    return {
        "status": result.status,
        "phases": {p.name: p.status for p in result.phases},
        "failed": first_failure(result),
        "artifact": None if art is None else {"files": list(art.names), "ok": art.ok, "message": art.message},
        "reports": {g: {"status": r.status, "counts": dict(r.counts), "total": r.total}
                    for g, r in result.reports.items()},
        "exported": dict(result.exported),
    }


def first_failure(result: Any) -> dict | None:
    """The phase that broke the build, and the command in it that failed (None when none failed).

    ``{"phase": "BUILD", "status": "FAILED", "command": "pytest ...", "exit_code": 1}``; ``command`` is
    None when the phase failed without one (an artifact that matched nothing), and ``exit_code`` is None
    for a command stopped by the build's timeout.
    """
    for p in result.phases:
        if p.status in ("FAILED", "TIMED_OUT"):
            cmd = next((c for c in p.commands if c.exit_code != 0), None)
            return {"phase": p.name, "status": p.status, "command": cmd.command if cmd else None,
                    "exit_code": cmd.exit_code if cmd else None, "message": p.message}
    return None


def version(answer: str | None) -> str | None:
    """The version in a greeter's answer (``"Hello, Ana! (greeter 1.1)"`` -> ``"1.1"``); None for no answer."""
    m = re.search(r"\(greeter ([^)\s]+)\)", answer or "")
    return m[1] if m else None


class Listener:
    """Ask ``url`` through ``probe`` (a :class:`coursekit.orchestrate.swarm.Probe`) every ``every`` seconds, in a
    background thread, for as long as a ``with`` block runs (a pipeline run, say).

    ``samples`` holds ``(seconds since the start, version that answered or None)``: what users would
    have seen meanwhile. ``start`` is the ``time.time()`` the block began (to line up with a pipeline's times).
    """

    def __init__(self, probe: Any, url: str, every: float = 0.3):
        self.probe, self.url, self.every = probe, url, every
        self.samples: list[tuple[float, str | None]] = []
        self.start = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Listener:  # noqa: PYI034
        self.start = time.time()
        self._thread = threading.Thread(target=self._loop, name="ck-listener", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.probe.get(self.url, timeout=2)
            except Exception:  # noqa: BLE001 - the probe went away: record no answer, keep going
                answer = None
            self.samples.append((round(time.time() - self.start, 2), version(answer)))
            self._stop.wait(self.every)

    def counts(self) -> dict[str, int]:
        """How many answers came from each version (``"-"``: no answer)."""
        out: dict[str, int] = {}
        for _, v in self.samples:
            out[v or "-"] = out.get(v or "-", 0) + 1
        return out


class SideBySide:
    """Two texts in two columns (in a notebook), or one after the other (as text)."""

    def __init__(self, left: tuple[str, str], right: tuple[str, str]):
        self.left, self.right = left, right

    def __str__(self) -> str:
        return "\n\n".join(f"==> {title} <==\n{text}" for title, text in (self.left, self.right))

    def _repr_html_(self) -> str:
        cols = "".join(f'<div style="flex:1;min-width:300px"><b><code>{html.escape(t)}</code></b>'
                       f'<pre style="font-size:80%;background:{CODE_BACKGROUND};padding:6px;overflow-x:auto">'
                       f"{html.escape(x)}</pre></div>" for t, x in (self.left, self.right))
        return f'<div style="display:flex;gap:12px;flex-wrap:wrap">{cols}</div>'


def compare(name: str, left: str, right: str) -> SideBySide:
    """Two files of an app side by side, e.g. ``compare("greeter", "buildspec.yml", "Jenkinsfile")``."""
    return SideBySide((left, read(name, left)), (right, read(name, right)))


__all__ = ["APPS_DIR", "AUTHOR", "Listener", "SideBySide", "change", "compare", "first_failure", "git", "names",
           "path", "read", "summary", "version", "workspace"]
