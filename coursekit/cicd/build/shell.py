"""One shell for a whole build: the build's commands, one at a time, with their exit codes.

CodeBuild (buildspec version 0.2) runs all the commands of a build in one shell, so ``cd``
and ``export`` in one command still hold in the next, in later phases too. :class:`BuildShell`
does the same in a running container: it starts the shell once (``docker exec`` with stdin
attached, stderr joined to stdout as in CodeBuild's log) and types one short line per
command, which

1. saves the shell's state (working folder, exported variables) to ``/codebuild/ck/state``;
2. prints a start marker, sources the command's file (``. /codebuild/ck/cmd/7.sh``, stdin
   from ``/dev/null`` so a command cannot swallow the lines that follow), and prints an end
   marker with the command's exit code.

Markers start with the byte ``\\x1e`` and a random token, so a build's own output cannot fake
them; everything else is the command's output, handed line by line to ``on_line``.

A command that ends the shell itself (``exit 3``, or ``set -e`` followed by a failure) gets the
shell's exit status (3: it failed), and the build goes on in a new shell started
from the saved state (folder and exported variables; plain shell variables, functions and
aliases of the old shell are gone). :func:`container_files` and :func:`source_tar` prepare
what the shell sources. Used by :mod:`coursekit.cicd.build.runner` (lesson ``08-ci-cd``).
"""
from __future__ import annotations

import contextlib
import io
import queue
import re
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import CICDError

CK_DIR = "/codebuild/ck"
STATE = f"{CK_DIR}/state"


class BuildTimeout(Exception):
    """The build's deadline passed while a command was running."""


@dataclass
class CommandRun:
    """What one command did."""

    exit_code: int
    seconds: float
    output: str
    shell_died: bool = False


class BuildShell:
    """The build's shell inside ``container`` (a running container with ``/codebuild/ck`` in place)."""

    def __init__(self, container: Any, shell: str, workdir: str, token: str,
                 on_line: Callable[[str], None] = lambda line: None):
        self.container, self.shell, self.workdir, self.token = container, shell, workdir, token
        self.on_line = on_line
        self.restarts = 0
        self._exec_id = ""
        self._sock = None
        self._queue: queue.Queue = queue.Queue()
        self._buffer = b""
        self._marker = re.compile(rb"\x1e" + re.escape(token.encode()) + rb":([a-z]+):([^\n]*)\n")

    # ------------------------------------------------------------------ the shell process
    def start(self, restore: bool = False) -> None:
        """Start a shell; ``restore`` picks up the folder and variables saved before the last command."""
        from ...docker.sdk import frames as frames_iter

        api = self.container.client.api
        cmd = [self.shell, "-c", f"exec 2>&1; exec {self.shell} -s"]
        self._exec_id = api.exec_create(self.container.id, cmd, stdin=True, stdout=True, stderr=True, tty=False,
                                        workdir=self.workdir)["Id"]
        self._sock = api.exec_start(self._exec_id, socket=True)
        self._queue = queue.Queue()
        self._buffer = b""
        sock, q = self._sock, self._queue

        def reader() -> None:
            try:
                for _stream, data in frames_iter(sock, tty=False):
                    q.put(data)
            except Exception:  # the socket was closed under us: the build is over
                pass
            q.put(None)

        threading.Thread(target=reader, name="coursekit-build-shell", daemon=True).start()
        if restore:
            self._send(f'cd "$(cat {STATE}/pwd)" 2>/dev/null; . {STATE}/env 2>/dev/null; true')

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                raw = getattr(self._sock, "_sock", self._sock)
                raw.close()
            self._sock = None

    def _restart(self) -> None:
        self.restarts += 1
        self.close()
        self.start(restore=True)

    def _send(self, line: str) -> None:
        raw = getattr(self._sock, "_sock", self._sock)
        raw.sendall(line.encode() + b"\n")

    def _alive(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.container.client.api.exec_inspect(self._exec_id).get("Running"))
        return False

    def _exit_code(self) -> int:
        with contextlib.suppress(Exception):
            code = self.container.client.api.exec_inspect(self._exec_id).get("ExitCode")
            return int(code) if code is not None else 1
        return 1

    # ------------------------------------------------------------------ commands
    def run(self, script: str, deadline: float) -> CommandRun:
        """Source ``script`` (a file in the container) in the shell; wait for its exit code.

        Raises :class:`BuildTimeout` when ``deadline`` (a ``time.monotonic()`` value) passes.
        """
        t = self.token
        line = (f"pwd >{STATE}/pwd; export -p >{STATE}/env; printf '\\036{t}:start:\\n'; "
                f". {script} </dev/null 2>&1; printf '\\036{t}:end:%s\\n' \"$?\"")
        try:
            self._send(line)
        except OSError:  # the shell went away between commands (a background `kill`...): start another
            self._restart()
            self._send(line)
        t0 = time.monotonic()
        started, out = False, []
        while True:
            event = self._next(deadline, out)
            if event is None:  # the shell ended during the command: its exit status is the command's
                code = self._exit_code()
                self._restart()
                return CommandRun(code, time.monotonic() - t0, "".join(out), shell_died=True)
            kind, arg = event
            if kind == "start":
                started, t0 = True, time.monotonic()
                out.clear()
            elif kind == "end" and started:
                return CommandRun(int(arg) if arg.isdigit() else 1, time.monotonic() - t0, "".join(out))

    def _next(self, deadline: float, out: list[str]) -> tuple[str, str] | None:
        """Output lines go to ``on_line`` (and ``out``) until a marker arrives; None if the shell ended."""
        idle_since = time.monotonic()
        while True:
            m = self._marker.search(self._buffer)
            text_end = m.start() if m else self._buffer.rfind(b"\n") + 1
            if text_end:
                for line in self._buffer[:text_end].decode("utf-8", "replace").splitlines():
                    out.append(line + "\n")
                    self.on_line(line)
                self._buffer = self._buffer[text_end:]
                continue
            if m:
                self._buffer = self._buffer[m.end():]
                return m[1].decode(), m[2].decode()
            now = time.monotonic()
            if now >= deadline:
                raise BuildTimeout()
            try:
                data = self._queue.get(timeout=min(0.5, deadline - now))
            except queue.Empty:
                # Output stays open while a background process holds it: ask whether the shell lives.
                if time.monotonic() - idle_since > 1.0 and not self._alive():
                    data = None
                else:
                    continue
            if data is None:
                if self._buffer:
                    rest = self._buffer.decode("utf-8", "replace")
                    out.append(rest)
                    self.on_line(rest)
                    self._buffer = b""
                return None
            idle_since = time.monotonic()
            self._buffer += data


# --------------------------------------------------------------------------- files in the container


def container_files(spec: Any, token: str) -> tuple[dict[str, str], dict[tuple[str, str, int], str]]:
    """The scripts a build sources, by name under ``/codebuild/ck``, and each command's script path.

    One file per command (``cmd/build-commands-0.sh``...), plus ``failing.sh`` (sets
    ``CODEBUILD_BUILD_SUCCEEDING=0``), ``exported.sh`` (writes each exported variable that is
    set to ``state/exported/NAME``) and ``name.sh`` (expands ``artifacts.name`` in the shell,
    through an unquoted here-document, into ``state/name``).
    """
    files = {"failing.sh": "export CODEBUILD_BUILD_SUCCEEDING=0\n", "exported.sh": "".join(
        f'if [ -n "${{{v}+x}}" ]; then printf %s "${v}" >{STATE}/exported/{v}; fi\n'
        for v in spec.exported_variables) or ":\n"}
    if spec.artifacts and spec.artifacts.name:
        end = f"CK_NAME_{token}"
        files["name.sh"] = f"cat >{STATE}/name <<{end}\n{spec.artifacts.name}\n{end}\n"
    scripts = {}
    for pname, ph in spec.phases.items():
        for block, cmds in (("commands", ph.commands), ("finally", ph.finally_)):
            for i, cmd in enumerate(cmds):
                files[f"cmd/{pname}-{block}-{i}.sh"] = cmd + "\n"
                scripts[(pname, block, i)] = f"{CK_DIR}/cmd/{pname}-{block}-{i}.sh"
    return files, scripts


def source_tar(src: Path, src_dir: str, files: dict[str, str], max_bytes: int) -> bytes:
    """One tar for ``put_archive("/")``: the source folder as ``src_dir`` and ``files`` under ``/codebuild/ck``.

    Everything is owned by root, as CodeBuild's source is. Raises CICDError above ``max_bytes``.
    """
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    if total > max_bytes:
        raise CICDError(f"the source folder {src} holds {total / 1e6:.0f} MB, more than the "
                        f"{max_bytes // 1_000_000} MB a course build copies",
                        "build a smaller folder (leave out virtual environments, data sets and build outputs)")

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buf, now = io.BytesIO(), time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(src), arcname=src_dir.lstrip("/"), filter=owned)
        for name, text in files.items():
            data = text.encode()
            info = owned(tarfile.TarInfo(f"{CK_DIR.lstrip('/')}/{name}"))
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
        for d in (STATE, f"{STATE}/exported"):
            info = owned(tarfile.TarInfo(d.lstrip("/")))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
    return buf.getvalue()


def read_state(container: Any, exported_names: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """What ``exported.sh`` and ``name.sh`` wrote: the exported variables that were set, and the artifact name."""
    stream, _ = container.get_archive(STATE)
    found, name = {}, None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("state/exported/"):
                found[m.name.rsplit("/", 1)[1]] = tar.extractfile(m).read().decode("utf-8", "replace")
            elif m.isfile() and m.name == "state/name":
                name = tar.extractfile(m).read().decode("utf-8", "replace").strip() or None
    return {v: found[v] for v in exported_names if v in found}, name
