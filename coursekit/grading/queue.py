"""The work list of a grading job on a cluster: one item per submission, each handed out once.

:mod:`coursekit.grading.swarm` grades a class as one Swarm job whose tasks pull their work from
here. Three parts, all standard library (the server and the client run inside the grading
image):

* **the host** (:class:`WorkList`) writes one item per submission into a folder: the request
  :func:`coursekit.grading.inputs.build_request` makes, plus the item's name and a random nonce the
  host chose for it (kept apart in ``keys/`` as well). It then reads ``claims/`` and
  ``results/`` as the job runs, and marks in ``closed/`` the items whose task has ended;
* **the server** (:func:`serve`, ``python3 -m coursekit.grading.queue serve FOLDER``) runs in a
  container of the grading image with that folder mounted, on an *internal* overlay network
  made for this run (no route out, nothing published on any host). ``POST /claim`` answers with
  the next unclaimed item, ``POST /report`` takes a report (with the item's nonce) and writes
  ``results/<item>.json``;
* **the worker** (:func:`claim`, :func:`deliver`, used by ``python3 -m coursekit.grading.worker
  --queue URL``, PID 1 of each task) claims one item before any student code runs, runs it as
  in every sandbox, kills every other process, and posts its report.

**Threat model.** The student's code runs in the same container as the worker, so it can reach
this server too (it knows the URL: it is in the worker's command line). What it can do there,
and why it gets nothing:

* *claim a second item*, to read another student's submission: the server gives each network
  address (one task container) at most **one open claim**, and the worker has made it before
  the student's code started. The claim stays open until its report is in (the worker kills
  every other process of the sandbox before it reports, so nothing of the student's is left at
  that address) or until the host has seen the task end and closed it (the container, with
  everything in it, is gone). Only then may a new container that got the same address from the
  overlay network (addresses are reused) claim. An address cannot be faked: the sandbox has no
  capabilities (no ``CAP_NET_RAW``, no ``CAP_NET_ADMIN``), so it cannot spoof packets or add
  addresses, nor sniff another task's traffic;
* *post a fake report* (its own item's or another's): a report counts only with the item's
  nonce, from the address that claimed the item, and only once. The nonce is in the worker's
  memory alone (PID 1 is non-dumpable: ``/proc/1/mem`` is closed to the student's processes) and
  is 128 random bits; the claim that carried it was over before the student's code ran;
* *flood the server*: at most :data:`PER_ADDRESS` connections at a time from one address, each
  cut after :data:`SOCKET_TIMEOUT` seconds of silence, bodies capped (a claim 4 KB, a report
  ``max_report``) and refused before they are read. This can slow the work list down for the
  others, not change anything: a worker that cannot claim ends without an item (the host grades
  its submission again on the next run, as a ``grader error``), one that cannot post its report
  exits with :data:`~coursekit.grading.worker.EXIT_UNDELIVERED` (the same).

Every refused request is written to ``refused.log`` (the host puts a summary in ``grade.log``).
The other tasks on the network expose nothing of the grader's: the worker listens on no port,
and the kernel's ports are on the sandbox's loopback only. (Two submissions could talk to each
other there if one listened and the other connected: that needs both students to collude, which
they can do before handing in anyway; no honest submission listens.) Between the nodes of a real
cluster the submissions cross the nodes' own network inside the overlay's traffic, which
coursekit does not encrypt (Swarm's ``encrypted`` overlay option is untested here): grade on a
cluster whose network you trust.

Lesson: none (the instructor's side, ``coursekit grade --swarm``).
"""
from __future__ import annotations

import contextlib
import hmac
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = 8080
#: ``python3 -m QUEUE_MODULE serve FOLDER PORT MAX``: the work list's own container.
QUEUE_MODULE = "coursekit.grading.queue"
CLAIM, REPORT = "/claim", "/report"
PER_ADDRESS = 4          # connections at a time from one address
SOCKET_TIMEOUT = 10      # seconds a connection may stay silent
CLAIM_BYTES = 4096       # the body of a claim: {"task": "<the task's id>"}
DIRS = ("items", "keys", "claims", "results", "closed")
REFUSED_LOG = "refused.log"


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (the other side polls the folder)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the host's side


class WorkList:
    """The folder behind a work list, as the host sees it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        for d in DIRS:
            (self.folder / d).mkdir(parents=True, exist_ok=True, mode=0o700)

    def add(self, item: str, request: dict, nonce: str) -> None:
        _write(self.folder / "items" / f"{item}.json",
               json.dumps({**request, "item": item, "nonce": nonce}, separators=(",", ":")).encode())
        _write(self.folder / "keys" / item, nonce.encode())

    def hand_over(self, uid: int, gid: int) -> None:
        """Make the folder the server's (its user in the container), and nobody else's."""
        for top, dirs, files in os.walk(self.folder):
            for name in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.chown(name, uid, gid)
        os.chmod(self.folder, 0o700)

    def ready(self) -> bool:
        return (self.folder / "ready").exists()

    def claims(self) -> dict[str, dict]:
        """item -> {"address", "task", "at"}: every claim so far."""
        out = {}
        for p in (self.folder / "claims").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                out[p.stem] = json.loads(p.read_text())
        return out

    def result(self, item: str, max_bytes: int) -> dict | None:
        """The server's record of an accepted report (``{}`` if it is unreadable or too big), or None."""
        p = self.folder / "results" / f"{item}.json"
        try:
            if p.stat().st_size > max_bytes:
                return {}
            doc = json.loads(p.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def close(self, item: str) -> None:
        """The item's task has ended: its address may claim again (a new container may get it)."""
        _write(self.folder / "closed" / item, b"")

    def refused(self) -> list[str]:
        with contextlib.suppress(OSError):
            return (self.folder / REFUSED_LOG).read_text(errors="replace").splitlines()
        return []

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# --------------------------------------------------------------------------- the server


class _State:
    def __init__(self, folder: Path):
        self.folder = folder
        self.pending = sorted(p.stem for p in (folder / "items").glob("*.json"))
        self.keys = {p.name: p.read_bytes() for p in (folder / "keys").iterdir() if not p.name.startswith(".")}
        self.holder: dict[str, str] = {}    # address -> the item it holds (an open claim)
        self.claimed: dict[str, str] = {}   # item -> the address that claimed it
        self.reported: set[str] = set()
        self.active: dict[str, int] = {}    # address -> open connections
        self.refusals = 0
        self.lock = threading.Lock()

    def refuse(self, address: str, why: str) -> None:
        self.refusals += 1
        if self.refusals <= 1000:
            with contextlib.suppress(OSError), open(self.folder / REFUSED_LOG, "a") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} {address} {why}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, state: _State, max_report: int):
        self.state, self.max_report = state, max_report
        super().__init__(address, _Handler)

    def verify_request(self, request, client_address) -> bool:
        with self.state.lock:
            n = self.state.active.get(client_address[0], 0)
            if n >= PER_ADDRESS:
                return False
            self.state.active[client_address[0]] = n + 1
        return True

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.state.lock:
                self.state.active[client_address[0]] -= 1


class _Handler(BaseHTTPRequestHandler):
    timeout = SOCKET_TIMEOUT
    server_version = "coursekit-worklist"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: refused.log says what matters
        pass

    def _reply(self, code: int, doc: dict | None = None) -> None:
        data = json.dumps(doc).encode() if doc is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        st, address = self.server.state, self.client_address[0]
        cap = {CLAIM: CLAIM_BYTES, REPORT: self.server.max_report}.get(self.path)
        if cap is None:
            return self._reply(404, {"error": "POST /claim or /report"})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._reply(411, {"error": "Content-Length is required"})
        if not 0 <= length <= cap:
            st.refuse(address, f"{self.path}: a body of {length} bytes (at most {cap})")
            return self._reply(413, {"error": f"at most {cap} bytes"})
        try:
            doc = json.loads(self.rfile.read(length))
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            return self._reply(400, {"error": "the body is a JSON object"})
        return self._claim(address, doc) if self.path == CLAIM else self._report(address, doc)

    def _claim(self, address: str, doc: dict) -> None:
        st = self.server.state
        with st.lock:
            held = st.holder.get(address)
            if held is not None and (st.folder / "closed" / held).exists():
                del st.holder[address]  # its task ended: a new container has this address now
                held = None
            if held is not None:
                st.refuse(address, f"claim: this address holds {held} already")
                return self._reply(409, {"error": "this address holds an item already"})
            if not st.pending:
                return self._reply(204)
            item = st.pending.pop(0)
            st.holder[address], st.claimed[item] = item, address
            _write(st.folder / "claims" / f"{item}.json", json.dumps(
                {"item": item, "address": address, "task": str(doc.get("task", ""))[:100], "at": time.time()}).encode())
        path = st.folder / "items" / f"{item}.json"
        try:
            with open(path, "rb") as fh:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(os.fstat(fh.fileno()).st_size))
                self.end_headers()
                shutil.copyfileobj(fh, self.wfile, 1 << 20)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # handed out once: the submission leaves the list

    def _report(self, address: str, doc: dict) -> None:
        st = self.server.state
        item, nonce, report = str(doc.get("item"))[:100], str(doc.get("nonce", "")), doc.get("report")
        with st.lock:
            key = st.keys.get(item)
            if (key is None or st.claimed.get(item) != address or item in st.reported or not isinstance(report, dict)
                    or not hmac.compare_digest(key, nonce.encode())):
                st.refuse(address, f"report for {item!r}: not this address's item, a wrong nonce, or a second one")
                return self._reply(403, {"error": "refused"})
            st.reported.add(item)
            _write(st.folder / "results" / f"{item}.json",
                   json.dumps({"item": item, "nonce": nonce, "report": report, "at": time.time()}).encode())
            if st.holder.get(address) == item:
                del st.holder[address]  # the worker killed everything else before it reported
        return self._reply(200, {"ok": True})


def serve(folder: str | os.PathLike, port: int = PORT, max_report: int = 10_000_000) -> None:
    """Serve the work list in ``folder`` on this container's own address (not on loopback, not on 0.0.0.0)."""
    folder = Path(folder)
    address = socket.gethostbyname(socket.gethostname())
    server = _Server((address, port), _State(folder), max_report)
    _write(folder / "ready", f"{address}:{port}".encode())
    server.serve_forever()


# --------------------------------------------------------------------------- the worker's side


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def claim(url: str, wait: float = 60.0) -> dict | None:
    """The next item (the request, its ``item`` and ``nonce``), or None when the list is empty."""
    body = json.dumps({"task": socket.gethostname()}).encode()
    deadline = time.monotonic() + wait
    while True:
        try:
            status, data = _post(url.rstrip("/") + CLAIM, body, 120)
        except OSError as exc:  # the network or the server's name not there yet
            status, data = 0, str(exc).encode()
        if status == 200:
            return json.loads(data)
        if status == 204:
            return None
        if status not in (0, 409) or time.monotonic() > deadline:
            raise RuntimeError(f"could not claim an item from {url}: {status or data.decode(errors='replace')}")
        time.sleep(1)  # 409: the last container with this address has not been seen to end yet


def deliver(url: str, item: str, nonce: str, report: dict, wait: float = 30.0) -> bool:
    """Post the report for ``item``; True once the server has accepted it."""
    body = json.dumps({"item": item, "nonce": nonce, "report": report}, ensure_ascii=True,
                      separators=(",", ":")).encode()
    deadline = time.monotonic() + wait
    while True:
        try:
            status, _ = _post(url.rstrip("/") + REPORT, body, 60)
        except OSError as exc:
            status = 0
            print(f"coursekit grade worker: posting the report: {exc}"[:300], file=sys.stderr)
        if status == 200:
            return True
        if status != 0 or time.monotonic() > deadline:
            print(f"coursekit grade worker: the work list refused the report (HTTP {status})", file=sys.stderr)
            return False
        time.sleep(1)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "serve":
        print("usage: python3 -m coursekit.grading.queue serve FOLDER [PORT] [MAX_REPORT_BYTES]", file=sys.stderr)
        return 2
    serve(argv[1], int(argv[2]) if len(argv) > 2 else PORT, int(argv[3]) if len(argv) > 3 else 10_000_000)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
