"""Every limit a learner's Dockerfile is built and run under, declared in one place.

The trusted grader (and lesson ``05-dockerfiles``, through
:func:`coursekit.dockerfile.tryout.try_dockerfile`) builds and runs Dockerfiles written by
students. Whatever they wrote, the container it makes gets the limits of :class:`Limits`,
each with a default chosen for a small web app or script:

* **memory** 256 MiB, with swap set to the same value (so no extra swap: over the limit the
  kernel kills the process, and Docker reports ``OOMKilled``);
* **pids** 128 processes (a fork bomb stops there), **cpus** 1, open files 1024;
* **no-new-privileges** (setuid programs cannot gain root) and **cap-drop ALL**: a server on a
  port above 1023 needs no Linux capability at all, not even as root;
* **network**: ``"auto"`` gives the default bridge when a port is probed (the probe must
  reach the published port, which binds to 127.0.0.1 only) and **no network** otherwise;
* **logs** kept by the engine capped at 1 MB, and what we quote of them capped again;
* the **build** may use the bridge (``apt-get`` reaches the OS archive here) with 1 GiB per
  step, and has a wall-clock limit (:class:`coursekit.dockerfile.build.BuildRun` kills a build
  that runs too long). ``FROM`` an image that is not on the engine is refused up front: the
  sandbox never pulls. Nor does it let the engine download ``ADD https://...`` sources unless
  ``add_urls=True``.

>>> Limits().memory, Limits(memory="64m").create_options()["memswap_limit"]
('256m', '64m')
>>> Limits().network_for(port=8000), Limits().network_for(port=None)
('bridge', 'none')

Lesson: ``05-dockerfiles`` and the class grader (issue 7).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CoursekitError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
NANO = 1_000_000_000


def size_bytes(text: str | int, what: str = "memory") -> int:
    """``"256m"`` -> 268435456; a clear error for anything else.

    >>> size_bytes("1g") == 1 << 30
    True
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise CoursekitError(f"{what}={text!r} is not a size",
                             'write it as Docker does: a number with k, m or g, such as "256m"')
    return int(float(m[1]) * _UNITS[m[2].lower()])


@dataclass(frozen=True)
class Limits:
    """The sandbox of one tryout. Pass ``Limits(memory="64m")`` etc. to change one value."""

    memory: str = "256m"           # RAM of the running container (docker run --memory)
    memory_swap: str = ""          # "" = same as memory: no swap on top (docker run --memory-swap)
    pids: int = 128                # processes and threads (docker run --pids-limit)
    cpus: float = 1.0              # CPU cores (docker run --cpus)
    nofile: int = 1024             # open files (docker run --ulimit nofile=N:N)
    no_new_privileges: bool = True  # docker run --security-opt no-new-privileges
    cap_drop: tuple[str, ...] = ("ALL",)   # docker run --cap-drop
    cap_add: tuple[str, ...] = ()          # docker run --cap-add (nothing the course needs)
    network: str = "auto"          # "auto" (bridge to probe a port, else none), "bridge" or "none"
    read_only: bool = False        # docker run --read-only (then /tmp is a small tmpfs)
    tmpfs_size: str = "16m"        # size of that /tmp tmpfs
    engine_log_size: str = "1m"    # the engine keeps at most this much of the container's output
    build_memory: str = "1g"       # RAM of each build step's container
    build_network: str = "bridge"  # network of build steps ("none": RUN cannot download anything)
    context_bytes: int = 50 << 20  # the largest build context accepted
    add_urls: bool = False         # ADD https://...: the engine itself would fetch it, from the host's network
    log_lines: int = 15            # lines of output quoted in a verdict
    log_chars: int = 3000          # ... and at most this many characters of them
    body_bytes: int = 4096         # bytes of an HTTP answer kept
    health_interval: float = 0.25  # seconds between health checks while grading (see try_dockerfile)

    def __post_init__(self):
        for name in ("memory", "build_memory", "tmpfs_size", "engine_log_size"):
            size_bytes(getattr(self, name), name)
        if self.memory_swap:
            size_bytes(self.memory_swap, "memory_swap")
        if size_bytes(self.memory) < 6 << 20:
            raise CoursekitError(f"memory={self.memory!r} is below Docker's minimum of 6 MiB", 'use at least "6m"')
        if self.network not in ("auto", "bridge", "none") or self.build_network not in ("bridge", "none"):
            raise CoursekitError(f"network={self.network!r}, build_network={self.build_network!r}: not a network "
                                 "policy of the sandbox", 'use network="auto" (bridge only to probe a port), "bridge" '
                                 'or "none"; build_network="bridge" or "none"')
        if not (0 < self.cpus <= 64) or self.pids < 1 or self.nofile < 16:
            raise CoursekitError(f"cpus={self.cpus}, pids={self.pids}, nofile={self.nofile}: a limit is out of range",
                                 "cpus must be above 0, pids at least 1, nofile at least 16")

    def network_for(self, port: int | None) -> str:
        """The network the container gets: see :attr:`network`."""
        if self.network == "auto":
            return "bridge" if port else "none"
        return self.network

    def create_options(self, *, port: int | None = None, host_port: int | None = None) -> dict:
        """Keyword arguments for ``engine.create`` that apply these limits (and publish ``port``)."""
        from docker.types import LogConfig, Ulimit

        network = self.network_for(port)
        if port and network == "none":
            raise CoursekitError(f"port {port} cannot be probed with network='none'",
                                 'leave network="auto" (or "bridge") for a server, or drop port= for a script')
        opts = {
            "mem_limit": self.memory, "memswap_limit": self.memory_swap or self.memory,
            "pids_limit": self.pids, "nano_cpus": int(self.cpus * NANO),
            "ulimits": [Ulimit(name="nofile", soft=self.nofile, hard=self.nofile)],
            "cap_drop": list(self.cap_drop), "cap_add": list(self.cap_add) or None,
            "security_opt": ["no-new-privileges"] if self.no_new_privileges else None,
            "network_mode": network, "read_only": self.read_only,
            "log_config": LogConfig(type="json-file", config={"max-size": self.engine_log_size, "max-file": "1"}),
        }
        if self.read_only:
            opts["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_size}"}
        if port:
            opts["ports"] = {f"{port}/tcp": ("127.0.0.1", host_port)}  # loopback only; None: a free port
        return {k: v for k, v in opts.items() if v is not None}

    def build_options(self) -> dict:
        """Keyword arguments for ``APIClient.build`` that limit each build step's container."""
        mem = size_bytes(self.build_memory)
        return {"container_limits": {"memory": mem, "memswap": mem}, "network_mode": self.build_network}

    def health_override(self, image_check: dict | None, start_timeout: float) -> dict | None:
        """The image's HEALTHCHECK, checked every :attr:`health_interval` seconds instead.

        A student may well write ``--interval=30s``: right for production, far too slow for
        grading. The test command, retries and start period stay the student's (the start
        period and the timeout capped by ``start_timeout``); only the pace changes.
        """
        test = (image_check or {}).get("Test") or []
        if not test or test[0] == "NONE":
            return None
        cap = int(start_timeout * NANO)
        timeout = (image_check.get("Timeout") or 30 * NANO)
        return {"test": test, "interval": int(self.health_interval * NANO),
                "timeout": min(timeout, cap), "retries": image_check.get("Retries") or 3,
                "start_period": min(image_check.get("StartPeriod") or 0, cap)}

    def quote(self, text: str | bytes) -> str:
        """The last :attr:`log_lines` lines of ``text``, at most :attr:`log_chars` characters."""
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        lines = text.rstrip().splitlines()[-self.log_lines:]
        out = "\n".join(line.rstrip() for line in lines)
        return out if len(out) <= self.log_chars else "…" + out[-self.log_chars:]
