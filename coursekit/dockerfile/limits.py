"""Every limit a learner's code runs under in a container, declared once: one field per limit.

Each limit is one dataclass field made by :func:`limit`: its default, what it bounds (the help
text), and how it is told to the engine, for ``docker run`` (``run=``) and for a task of a Swarm
service (``swarm=``, or the reason a service cannot have it). Everything else comes from that
one declaration: :meth:`ContainerLimits.create_options` (the docker SDK's ``create()``
arguments), :meth:`ContainerLimits.service_spec` (the Swarm task template), the flags of
``coursekit grade`` (fields with ``cli=True``, see :mod:`coursekit.cli`) and
:meth:`ContainerLimits.describe` (the table in the docs). A new limit is one new field.

Three sets of limits share these fields:

* :class:`ContainerLimits`, what every sandbox container is held to;
* :class:`Limits`, a learner's Dockerfile built and run by
  :func:`coursekit.dockerfile.tryout.try_dockerfile` (lesson ``05-dockerfiles`` and the grader):
  it adds the build's limits and the wall clocks of a tryout;
* :class:`~coursekit.grading.limits.GradeLimits`, a submission graded in its sandbox: stricter
  defaults (no network, read-only root, not root) and the worker's own limits.

The tryout's defaults suit a small web app or script: 256 MiB of memory with no swap on top
(over it the kernel kills the process and Docker reports ``OOMKilled``), 128 processes (a fork
bomb stops there), one CPU, 1024 open files, no new privileges, every capability dropped (a
server on a port above 1023 needs none, even as root), no network unless a port is probed (then
the default bridge, published on 127.0.0.1 only), the engine's log capped at 1 MB. A build may
use the bridge (``apt-get`` reaches the OS archive) with 1 GiB per step, has a wall clock
(:class:`coursekit.dockerfile.build.BuildRun`), never pulls, and may not ``ADD`` a URL unless
``add_urls=True``.

>>> Limits().memory, Limits(memory="64m").create_options()["memswap_limit"]
('256m', '64m')
>>> Limits().network_for(port=8000), Limits().network_for(port=None)
('bridge', 'none')
>>> ContainerLimits(memory="64m", pids=10).service_spec()["Resources"]
{'Limits': {'MemoryBytes': 67108864, 'Pids': 10, 'NanoCPUs': 1000000000}}

Lesson: ``05-dockerfiles`` and the class grader.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable

from ..errors import DockerfileError, LimitsError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
NANO = 1_000_000_000

#: How a limit is told to the engine: (its value, all the limits, the call's context) -> a fragment.
Translate = Callable[[Any, "ContainerLimits", dict], dict]


def size_bytes(text: str | int, what: str = "memory") -> int:
    """``"256m"`` -> 268435456; a clear error for anything else.

    >>> size_bytes("1g") == 1 << 30
    True
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise LimitsError(f"{what}={text!r} is not a size",
                          'write it as Docker does: a number with k, m or g, such as "256m"')
    return int(float(m[1]) * _UNITS[m[2].lower()])


def limit(default: Any, help: str, *, run: Translate | None = None, swarm: Translate | str | None = None,
          cli: bool = False, part_of: str = ""):
    """One limit: a dataclass field with its default and help text, and how the engine is told.

    ``run``: the ``docker run`` options it makes; ``swarm``: the Swarm task-template fragment it
    makes, or (a string) why a service cannot have it; ``part_of``: told together with that other
    field (whose translation reads this one); ``cli``: a flag of ``coursekit grade``. A limit with
    neither ``run`` nor ``swarm`` is enforced by coursekit itself (a wall clock, a size cap).
    """
    return field(default=default, metadata={"help": help, "run": run, "swarm": swarm, "cli": cli,
                                            "part_of": part_of})


def limit_flags(cls: type) -> list:
    """The fields of ``cls`` declared with ``cli=True``: the flags of ``coursekit grade``."""
    return [f for f in fields(cls) if f.metadata.get("cli")]


def default_of(cls: type, name: str, default: Any):
    """The field ``name`` of ``cls`` (its help and translations) with another default."""
    return field(default=default, metadata=cls.__dataclass_fields__[name].metadata)


def merged(*parts: dict) -> dict:
    """Fragments put together: mappings merge key by key, lists add up, anything else is set."""
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            elif isinstance(value, list) and isinstance(out.get(key), list):
                out[key] = out[key] + value
            else:
                out[key] = value
    return out


def _ulimit(name: str, n: int) -> dict:
    return {"Name": name, "Soft": n, "Hard": n}


def _tmpfs_mount(target: str, size: str) -> dict:
    return {"Target": target, "Source": None, "Type": "tmpfs", "ReadOnly": False,
            "TmpfsOptions": {"SizeBytes": size_bytes(size), "Mode": 0o1777}}


def _network(value: str, lim: "ContainerLimits", ctx: dict) -> dict:
    port, host_port, name = ctx.get("port"), ctx.get("host_port"), ctx.get("network")
    if name:  # a network of ours, by name (a grading run's internal network)
        return {"network": name}
    network = lim.network_for(port)
    if port and network == "none":
        raise DockerfileError(f"port {port} cannot be probed with network='none'",
                              'leave network="auto" (or "bridge") for a server, or drop port= for a script')
    out: dict = {"network_mode": network}
    if port:
        out["ports"] = {f"{port}/tcp": ("127.0.0.1", host_port)}  # loopback only; None: a free port
    return out


def _tmp(value: str, lim: "ContainerLimits", ctx: dict) -> dict:
    if not lim.read_only:
        return {}
    # noexec, nosuid, nodev: the engine's own defaults for a tmpfs, written out (a Swarm task's tmpfs mount gets them too)
    return {"tmpfs": {"/tmp": f"rw,noexec,nosuid,nodev,size={value}"}}


@dataclass(frozen=True)
class ContainerLimits:
    """What every sandbox container is held to. ``ContainerLimits(memory="64m")`` changes one value."""

    memory: str = limit(
        "256m", "memory of the container; over it the kernel kills a process (OOMKilled)", cli=True,
        run=lambda v, lim, ctx: {"mem_limit": v},
        swarm=lambda v, lim, ctx: {"Resources": {"Limits": {"MemoryBytes": size_bytes(v)}}})
    memory_swap: str = limit(
        "", 'memory plus swap; "" is the same as memory: no swap on top',
        run=lambda v, lim, ctx: {"memswap_limit": v or lim.memory},
        swarm="a Swarm service cannot cap swap (API 1.41): run the grading nodes without swap")
    pids: int = limit(
        128, "processes and threads (a fork bomb stops there)",
        run=lambda v, lim, ctx: {"pids_limit": v},
        swarm=lambda v, lim, ctx: {"Resources": {"Limits": {"Pids": v}}})
    cpus: float = limit(
        1.0, "CPU cores of the container (several sandboxes run side by side)", cli=True,
        run=lambda v, lim, ctx: {"nano_cpus": int(v * NANO)},
        swarm=lambda v, lim, ctx: {"Resources": {"Limits": {"NanoCPUs": int(v * NANO)}}})
    nofile: int = limit(
        1024, "open files per process",
        run=lambda v, lim, ctx: {"ulimits": [_ulimit("nofile", v)]},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"Ulimits": [_ulimit("nofile", v)]}})
    core_dumps: bool = limit(
        True, "whether a crashing process may write a core file (False: ulimit core=0)",
        run=lambda v, lim, ctx: {} if v else {"ulimits": [_ulimit("core", 0)]},
        swarm=lambda v, lim, ctx: {} if v else {"ContainerSpec": {"Ulimits": [_ulimit("core", 0)]}})
    no_new_privileges: bool = limit(
        True, "setuid programs cannot gain privileges (no-new-privileges)",
        run=lambda v, lim, ctx: {"security_opt": ["no-new-privileges"]} if v else {},
        swarm="a Swarm service cannot set it (API 1.41): the grading worker sets no_new_privs on itself, and "
              "the run image has no setuid files")
    cap_drop: tuple[str, ...] = limit(
        ("ALL",), "Linux capabilities dropped",
        run=lambda v, lim, ctx: {"cap_drop": list(v)},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"CapabilityDrop": list(v)}})
    cap_add: tuple[str, ...] = limit(
        (), "Linux capabilities added (nothing the course needs)",
        run=lambda v, lim, ctx: {"cap_add": list(v)} if v else {},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"CapabilityAdd": list(v)}} if v else {})
    network: str = limit(
        "auto", '"auto" (the bridge to probe a published port, else none), "bridge" or "none"', run=_network,
        swarm="a task is attached to its run's own internal network, made by coursekit.grading.swarm")
    read_only: bool = limit(
        False, "read-only root file system (then /tmp is a small tmpfs)",
        run=lambda v, lim, ctx: {"read_only": v},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"ReadOnly": v}})
    tmpfs_size: str = limit(
        "16m", "size of /tmp, the writable tmpfs of a read-only container (noexec, nosuid, nodev)", run=_tmp,
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"Mounts": [_tmpfs_mount("/tmp", v)]}} if lim.read_only else {})
    shm_size: str = limit(
        "", 'size of /dev/shm (noexec, as Docker makes it); "" is the engine\'s default',
        run=lambda v, lim, ctx: {"shm_size": v} if v else {},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"Mounts": [_tmpfs_mount("/dev/shm", v)]}} if v else {})
    user: str = limit(
        "", 'the user the container runs as; "" is the image\'s USER',
        run=lambda v, lim, ctx: {"user": v} if v else {},
        swarm=lambda v, lim, ctx: {"ContainerSpec": {"User": v}} if v else {})
    engine_log_size: str = limit(
        "1m", "what the engine keeps of the container's output",
        run=lambda v, lim, ctx: {"log_config": {"Type": "json-file", "Config": {"max-size": v, "max-file": "1"}}},
        swarm=lambda v, lim, ctx: {"LogDriver": {"Name": "json-file", "Options": {"max-size": v, "max-file": "1"}}})

    def __post_init__(self):
        for name in ("memory", "tmpfs_size", "engine_log_size"):
            size_bytes(getattr(self, name), name)
        for name in ("memory_swap", "shm_size"):
            if getattr(self, name):
                size_bytes(getattr(self, name), name)
        if size_bytes(self.memory) < 6 << 20:
            raise LimitsError(f"memory={self.memory!r} is below Docker's minimum of 6 MiB", 'use at least "6m"')
        if self.network not in ("auto", "bridge", "none"):
            raise LimitsError(f"network={self.network!r}: not a network policy of the sandbox",
                              'use network="auto" (bridge only to probe a port), "bridge" or "none"')
        if not (0 < self.cpus <= 64) or self.pids < 1 or self.nofile < 16:
            raise LimitsError(f"cpus={self.cpus}, pids={self.pids}, nofile={self.nofile}: a limit is out of range",
                              "cpus must be above 0, pids at least 1, nofile at least 16")

    def network_for(self, port: int | None) -> str:
        """The network the container gets: see :attr:`network`."""
        if self.network == "auto":
            return "bridge" if port else "none"
        return self.network

    def create_options(self, *, port: int | None = None, host_port: int | None = None,
                       network: str | None = None) -> dict:
        """Keyword arguments for ``engine.create`` that apply every limit (and publish ``port`` on 127.0.0.1).

        ``network``: attach to this network of ours by name instead (no port is published then).
        """
        ctx = {"port": port, "host_port": host_port, "network": network}
        return merged(*(f.metadata["run"](getattr(self, f.name), self, ctx) for f in fields(self)
                        if f.metadata.get("run")))

    def service_spec(self) -> dict:
        """The limits as a fragment of a Swarm service's task template (the Docker API's own JSON)."""
        return merged(*(f.metadata["swarm"](getattr(self, f.name), self, {}) for f in fields(self)
                        if callable(f.metadata.get("swarm"))))

    @classmethod
    def not_on_swarm(cls) -> dict[str, str]:
        """The limits a Swarm service cannot have, each with why and what stands in for it."""
        return {f.name: f.metadata["swarm"] for f in fields(cls) if isinstance(f.metadata.get("swarm"), str)}

    @classmethod
    def describe(cls) -> str:
        """Every limit with its default and what it bounds, as a table (``print(GradeLimits.describe())``)."""
        rows = [(f.name, repr(f.default) if f.default is not MISSING else "", f.metadata.get("help", ""))
                for f in fields(cls)]
        width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
        return "\n".join(f"{n:<{width[0]}}  {d:<{width[1]}}  {h}" for n, d, h in rows)

    def to_dict(self) -> dict:
        """Plain values (for the state file, the log, and the request a grading sandbox gets)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, doc: dict):
        """The limits :meth:`to_dict` wrote; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise LimitsError(f"unknown limits for {cls.__name__}: {', '.join(unknown)}",
                              "the two sides run different coursekit versions: rebuild the sandbox image")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})


@dataclass(frozen=True)
class Limits(ContainerLimits):
    """The sandbox of one Dockerfile tryout. ``Limits(memory="64m")`` changes one value."""

    build_memory: str = limit("1g", "memory of each build step's container")
    build_network: str = limit("bridge", 'network of build steps ("none": RUN cannot download anything)')
    context_bytes: int = limit(50 << 20, "the largest build context accepted")
    add_urls: bool = limit(False, "ADD https://...: the engine itself would fetch it, from the host's network")
    build_timeout: float = limit(180.0, "seconds a build may take before it is stopped")
    start_timeout: float = limit(20.0, "seconds a server may take to answer (or become healthy) after it starts")
    log_lines: int = limit(15, "lines of output quoted in a verdict")
    log_chars: int = limit(3000, "characters of those lines, at most")
    body_bytes: int = limit(4096, "bytes of an HTTP answer kept")
    health_interval: float = limit(0.25, "seconds between health checks while grading (see health_override)")

    def __post_init__(self):
        super().__post_init__()
        size_bytes(self.build_memory, "build_memory")
        if self.build_network not in ("bridge", "none"):
            raise LimitsError(f"build_network={self.build_network!r}: not a network policy of the sandbox",
                              'use build_network="bridge" or "none"')
        for name in ("build_timeout", "start_timeout"):
            if not getattr(self, name) > 0:
                raise LimitsError(f"{name}={getattr(self, name)!r} must be a positive number of seconds",
                                  f"give {name} in seconds, e.g. {name}=60")

    def build_options(self) -> dict:
        """Keyword arguments for ``APIClient.build`` that limit each build step's container."""
        mem = size_bytes(self.build_memory)
        return {"container_limits": {"memory": mem, "memswap": mem}, "network_mode": self.build_network}

    def health_override(self, image_check: dict | None, start_timeout: float | None = None) -> dict | None:
        """The image's HEALTHCHECK, checked every :attr:`health_interval` seconds instead.

        A student may well write ``--interval=30s``: right for production, far too slow for
        grading. The test command, retries and start period stay the student's (the start
        period and the timeout capped by ``start_timeout``); only the pace changes.
        """
        test = (image_check or {}).get("Test") or []
        if not test or test[0] == "NONE":
            return None
        cap = int((self.start_timeout if start_timeout is None else start_timeout) * NANO)
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
