"""One limits schema: every limit is one field, and every way of telling the engine comes from it."""
from __future__ import annotations

import dataclasses
import doctest
import subprocess
import sys

import pytest

from coursekit.dockerfile import limits as limits_module
from coursekit.dockerfile.limits import ContainerLimits, Limits, limit_flags
from coursekit.errors import LimitsError
from coursekit.grading.limits import GradeLimits
from coursekit.grading.protocol import limits_of


def test_the_doctests_run():
    assert doctest.testmod(limits_module).failed == 0


@pytest.mark.parametrize("cls", [ContainerLimits, Limits, GradeLimits], ids=lambda c: c.__name__)
def test_every_limit_says_what_it_bounds(cls):
    for f in dataclasses.fields(cls):
        assert len(f.metadata.get("help", "")) > 10, f"{cls.__name__}.{f.name} has no help text"


@pytest.mark.parametrize("field", dataclasses.fields(ContainerLimits), ids=lambda f: f.name)
def test_every_container_limit_says_how_docker_run_and_a_swarm_task_are_told(field):
    meta = field.metadata
    assert callable(meta["run"]) or meta["part_of"] in ContainerLimits.__dataclass_fields__, \
        f"{field.name}: give run= (the docker run options it makes) or part_of= (the field that says it)"
    assert callable(meta["swarm"]) or (isinstance(meta["swarm"], str) and len(meta["swarm"]) > 20), \
        f"{field.name}: give swarm= (its piece of the task template) or why a service cannot have it"


def test_grading_keeps_each_fields_meaning_with_its_own_default():
    for name in ("memory", "network", "read_only", "tmpfs_size", "user", "core_dumps", "engine_log_size"):
        ours, base = GradeLimits.__dataclass_fields__[name], ContainerLimits.__dataclass_fields__[name]
        assert ours.metadata == base.metadata and ours.default != base.default, name


def test_the_sandbox_options_come_from_the_fields():
    opts = GradeLimits(memory="512m", pids=99, cpus=0.5, nofile=256).create_options()
    assert opts["mem_limit"] == opts["memswap_limit"] == "512m" and opts["pids_limit"] == 99
    assert opts["nano_cpus"] == 500_000_000 and opts["network_mode"] == "none" and opts["read_only"] is True
    assert {(u["Name"], u["Hard"]) for u in opts["ulimits"]} == {("nofile", 256), ("core", 0)}
    assert opts["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m"} and opts["shm_size"] == "8m"
    assert opts["user"] == "10001:10001" and opts["security_opt"] == ["no-new-privileges"]
    assert opts["log_config"] == {"Type": "json-file", "Config": {"max-size": "16m", "max-file": "1"}}
    tryout = Limits().create_options(port=8000)
    assert tryout["network_mode"] == "bridge" and tryout["ports"] == {"8000/tcp": ("127.0.0.1", None)}
    assert "user" not in tryout and "shm_size" not in tryout and "tmpfs" not in tryout  # the image's own
    assert Limits().create_options(network="ours")["network"] == "ours"


def test_the_same_fields_make_the_swarm_task_template():
    spec = GradeLimits(memory="512m", pids=99, cpus=0.5).service_spec()
    assert spec["Resources"] == {"Limits": {"MemoryBytes": 512 << 20, "Pids": 99, "NanoCPUs": 500_000_000}}
    cs = spec["ContainerSpec"]
    assert cs["ReadOnly"] is True and cs["User"] == "10001:10001" and cs["CapabilityDrop"] == ["ALL"]
    assert {(u["Name"], u["Hard"]) for u in cs["Ulimits"]} == {("nofile", 1024), ("core", 0)}
    assert {m["Target"]: m["TmpfsOptions"]["SizeBytes"] for m in cs["Mounts"]} == {"/tmp": 64 << 20,
                                                                                  "/dev/shm": 8 << 20}
    assert spec["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "16m", "max-file": "1"}}
    assert set(GradeLimits.not_on_swarm()) == {"memory_swap", "no_new_privileges", "network"}


def test_the_grade_commands_flags_are_the_fields_marked_cli():
    out = subprocess.run([sys.executable, "-m", "coursekit", "grade", "--help"], capture_output=True, text=True,
                         check=True).stdout
    flags = {f.name for f in limit_flags(GradeLimits)}
    assert flags == {"memory", "cpus", "timeout", "cell_timeout"}
    for f in limit_flags(GradeLimits):
        assert f"--{f.name.replace('_', '-')}" in out
    flat = " ".join(out.split())
    assert "(default 1g)" in flat and "(default 300)" in flat and "(default 60)" in flat


def test_the_limits_travel_whole_to_the_worker_and_come_back_checked():
    lim = GradeLimits(timeout=120, cell_timeout=30, memory="512m")
    assert limits_of({"limits": lim.to_dict()}) == lim
    assert limits_of({"limits": lim.to_dict()}).budget == 110
    with pytest.raises(LimitsError):
        GradeLimits.from_dict({**lim.to_dict(), "surprise": 1})
    with pytest.raises(LimitsError):
        GradeLimits.from_dict({**lim.to_dict(), "network": "bridge"})  # checked again on the way in


def test_describe_lists_every_limit_once():
    text = GradeLimits.describe()
    names = [line.split()[0] for line in text.splitlines()]
    assert names == [f.name for f in dataclasses.fields(GradeLimits)]
