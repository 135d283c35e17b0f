"""A request body as the engine will read it: Docker's JSON keys, in the case the gate checks.

The engine is written in Go, whose JSON decoder matches an object's keys to a struct's fields
*case-insensitively* (``"source"``, ``"SOURCE"`` and ``"ſource"`` all set ``Source``), and when two
keys match one field, the later wins (and a second object for the same field is merged into the
first). A rule that reads ``mount["Source"]`` would then check one value while the engine used
another: ``{"Type": "volume", "Source": "data", "source": "/"}`` is a host bind mount of ``/``.

So before any rule looks at a body, :func:`loads` rewrites every key that names one of the API's
fields the gate reads or sets in that field's own spelling (the docker SDK itself sends
``{"replicated": {...}}`` for a service's mode), and refuses a body in which two keys of one object
name the same thing. The keys of maps that hold the submission's own data (labels, options, port
and network maps, sysctls...) are left as they are; their values are still walked. The rules then
forward the body they rebuilt, never the bytes that came in.
"""
from __future__ import annotations

import json
from typing import Any

from .routes import refuse

#: Every field of the Docker API that the gate's rules read, check or set (and the usual others).
FIELDS = frozenset("""
    Aliases AppArmor Annotations Args Attachable AttachStderr AttachStdin AttachStdout AutoRemove Binds BindOptions
    BlkioDeviceReadBps BlkioDeviceReadIOps BlkioDeviceWriteBps BlkioDeviceWriteIOps BlkioWeight BlkioWeightDevice
    CapAdd CapDrop CapabilityAdd CapabilityDrop Capabilities CgroupParent Cgroup CgroupnsMode CheckDuplicate Cmd
    Condition Config ConfigFrom ConfigName ConfigOnly Configs ConsoleSize Constraints Container ContainerIDFile
    ContainerSpec CpuCount CpuPercent CpuPeriod CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpuShares CpusetCpus
    CpusetMems CredentialSpec DNSConfig Delay Detach DetachKeys DeviceCgroupRules DeviceRequests Devices Dir Disable
    Dns DnsOptions DnsSearch Domainname Driver DriverConfig DriverOpts EnableIPv6 EndpointConfig EndpointSpec
    EndpointsConfig Entrypoint Env ExposedPorts ExtraHosts FailureAction File ForceUpdate GenericResources Global
    GlobalJob GroupAdd Groups Healthcheck Hostname HostConfig HostIp HostPort Hosts IOMaximumBandwidth
    IOMaximumIOps IPAM IPAMConfig IPv4Address IPv6Address Image Ingress Init Internal Interval Isolation
    ID Id KernelMemory KernelMemoryTCP Labels Limits Links LinkLocalIPs LogConfig LogDriver MacAddress MaskedPaths MaxAttempts
    MaxConcurrent MaxFailureRatio MaxReplicas Memory MemoryBytes MemoryReservation MemorySwap MemorySwappiness
    Mode Monitor Mounts Name NanoCPUs NanoCpus NetworkAttachmentSpec NetworkDisabled NetworkID NetworkMode
    NetworkingConfig Networks NoCopy NoNewPrivileges NonRecursive OnBuild OomKillDisable OomScoreAdj OpenStdin
    Options Order Parallelism PidMode Pids PidsLimit Placement Platforms Plugin PluginSpec PortBindings Ports
    Preferences Privileged Privileges Propagation Protocol PublishAllPorts PublishMode PublishedPort ReadOnly
    ReadonlyPaths ReadonlyRootfs Replicas Replicated ReplicatedJob Reservations Resources RestartPolicy Retries
    RollbackConfig Runtime SELinuxContext Scope Seccomp Secrets SecurityOpt Shell ShmSize Size SizeBytes Source
    Spec StartInterval StartPeriod StdinOnce StopGracePeriod StopSignal StopTimeout StorageOpt Subnet Sysctls TTY
    Target TargetPort TaskTemplate Test Timeout TmpfsOptions Tmpfs TotalCompletions Tty Type UTSMode Ulimits
    UpdateConfig User UsernsMode VolumeDriver VolumeOptions Volumes VolumesFrom Window WorkingDir
""".split())
_CANON = {f.casefold(): f for f in FIELDS}
#: Fields whose value is a map of the submission's own keys (names, paths, ports, options).
USER_MAPS = frozenset({"Labels", "ExposedPorts", "Volumes", "Tmpfs", "Sysctls", "DriverOpts", "Options",
                       "PortBindings", "EndpointsConfig", "StorageOpt", "Annotations", "Config"})


def _no_twice(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            refuse("body", f"the key {key!r} is given twice in one object", 400)
        out[key] = value
    return out


def canonical(doc: Any) -> Any:
    """``doc`` with each object's keys in the API's own spelling (a copy); refuses two keys for one field."""
    if isinstance(doc, list):
        return [canonical(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out: dict = {}
    seen: dict[str, str] = {}
    for key, value in doc.items():
        fold = str(key).casefold()
        name = _CANON.get(fold, key)
        if fold in seen:
            refuse("body", f"the keys {seen[fold]!r} and {key!r} name the same field ({name}): the engine would "
                           "read only one of them", 400)
        seen[fold] = key
        if name in USER_MAPS and isinstance(value, dict):
            out[name] = {k: canonical(v) for k, v in value.items()}
        else:
            out[name] = canonical(value)
    return out


def loads(body: bytes) -> Any:
    """A JSON request body, parsed and put in the API's own spelling (Refused 400 if it is not JSON)."""
    try:
        doc = json.loads(body or b"{}", object_pairs_hook=_no_twice)
    except ValueError:
        refuse("body", "the request body is not JSON", 400)
    return canonical(doc)
