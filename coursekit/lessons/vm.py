"""A real, tiny virtual machine, booted and timed, to set beside a container.

Lesson ``01-containers-and-vms`` asks: what does a VM carry that a container does not?
Here we answer by doing it. A VM needs its own kernel (a small kernel package made for VMs,
fetched from the distribution's archive: see :mod:`coursekit.lessons.vmfetch`), its own first process
(a busybox ``/init`` in an initramfs we build ourselves, byte by byte) and a machine to run on
(QEMU). Then we time "power on" to "userspace
says hello", and weigh the files, so the numbers can sit next to ``docker run``'s.

Steps: :func:`status` (what is here, what is missing), :func:`prepare` (fetch and build,
idempotent; ``coursekit vm-assets`` runs it), :func:`boot`, :func:`measure`,
:func:`footprint`. Everything lives in ``$COURSEKIT_CACHE/vm`` (default
``~/.cache/coursekit/vm``). ``COURSEKIT_QEMU`` names another QEMU binary ("" = none).
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import vmfetch
from ..errors import LessonError

MARKER = "COURSEKIT-VM-UP"
DONE = "COURSEKIT-VM-DONE"
APPEND = "console=ttyS0 panic=-1 quiet tsc_early_khz=2100000"
INSTALL_QEMU = ("on Debian or Ubuntu as root: `apt-get install --no-install-recommends qemu-system-x86` "
                "(on Binder: list qemu-system-x86 in binder/apt.txt)")
#: What each accelerator is, in words a student can use.
ACCEL = {"kvm": "KVM, hardware virtualisation", "tcg": "TCG, QEMU emulating the CPU in software: a real boot, "
                                                      "only slower than with KVM"}
#: The guest's first (and only) program. It is PID 1: in a VM, *our* script is init.
INIT = f"""#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
echo {MARKER}
echo "COURSEKIT-KERNEL $(uname -r)"
echo "COURSEKIT-PID1 $(cat /proc/1/comm)"
echo {DONE}
poweroff -f
"""
APPLETS = ("sh", "mount", "echo", "uname", "cat", "poweroff")
#: A KVM boot answers in well under a second; broken nested KVM often just hangs silently.
KVM_PROBE_SECONDS = 6.0
_kvm_broken = False   # set once KVM failed where TCG then worked, for this process


def cache_dir() -> Path:
    return Path(os.environ.get("COURSEKIT_CACHE") or Path.home() / ".cache" / "coursekit") / "vm"


@dataclass
class VMStatus:
    ok: bool
    reason: str
    fix: str = ""
    qemu: Path | None = None
    kernel: Path | None = None
    initramfs: Path | None = None
    accel: str | None = None   # what "auto" would try first: "kvm", "tcg", or None without QEMU
    accel_why: str = ""        # why not KVM, when accel is "tcg"


@dataclass
class BootResult:
    ok: bool
    seconds: float          # QEMU launched -> the guest printed MARKER
    accel: str              # "kvm" or "tcg": what this boot really used
    kernel_release: str = ""
    pid1: str = ""          # the name of the guest's PID 1 (our /init)
    console: str = ""       # the last lines the guest printed
    note: str = ""          # e.g. why KVM was not used
    tried: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- status


def _qemu() -> Path | None:
    name = os.environ.get("COURSEKIT_QEMU", "qemu-system-x86_64")   # "" hides QEMU (for tests)
    found = shutil.which(name) if name else None
    return Path(found) if found else None


def _kernel() -> Path | None:
    found = sorted((cache_dir() / "kernel" / "boot").glob("vmlinuz-*"))
    return found[-1] if found else None


def _verdict_file() -> Path:
    """Where we remember that KVM hangs on this host kernel, so each new kernel (Python
    process) does not spend KVM_PROBE_SECONDS finding it out again."""
    import platform

    return cache_dir() / f"kvm-broken-on-{platform.release()}"


def _kvm_unusable() -> str:
    """Why KVM cannot be used here by this user ("" when it can)."""
    if _kvm_broken or _verdict_file().exists():
        return f"KVM failed on this host kernel before (delete {_verdict_file()} to try it again)"
    if not os.path.exists("/dev/kvm"):
        return "there is no /dev/kvm: this machine offers no hardware virtualisation"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm exists, but this user may not use it: usually only root and the kvm group may"
    return ""


def _kvm_usable() -> bool:
    return not _kvm_unusable()


def status() -> VMStatus:
    """Is everything for a boot here? If not, say what is missing and how to get it."""
    qemu, kernel, initrd = _qemu(), _kernel(), cache_dir() / "initramfs.cpio.gz"
    initrd = initrd if initrd.is_file() else None
    why_not_kvm = _kvm_unusable() if qemu else ""
    accel = ("tcg" if why_not_kvm else "kvm") if qemu else None
    missing, fixes = [], []
    if not qemu:
        missing.append("QEMU (qemu-system-x86_64)")
        fixes.append(INSTALL_QEMU)
    if not kernel or not initrd:
        missing.append(" and ".join(n for n, p in (("the guest kernel", kernel), ("the initramfs", initrd)) if not p))
        fixes.append("run `coursekit vm-assets` (fetches a VM kernel package with apt, builds the initramfs)")
    if missing:
        return VMStatus(False, "cannot boot the VM: missing " + ", ".join(missing), "; then ".join(fixes),
                        qemu, kernel, initrd, accel, why_not_kvm)
    return VMStatus(True, f"ready to boot with {ACCEL[accel]}", "", qemu, kernel, initrd, accel, why_not_kvm)


# ----------------------------------------------------------------------------- prepare


def is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF with no PT_INTERP: it needs no dynamic loader, no libc."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _busybox(progress: Callable[[str], object], apt: vmfetch.PrivateApt) -> Path:
    for cand in (Path("/bin/busybox"), Path(shutil.which("busybox") or "/bin/busybox"),
                 cache_dir() / "busybox-static" / "bin" / "busybox"):
        if cand.is_file() and is_static_elf(cand):
            return cand
    progress("no static busybox installed: apt-get download busybox-static")
    apt.fetch(["busybox-static"], cache_dir() / "busybox-static")
    return cache_dir() / "busybox-static" / "bin" / "busybox"


def cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks into its first filesystem.

    Each entry is (name, mode, data, rdev); the mode carries the file type
    (0o100000 file, 0o040000 directory, 0o120000 symlink whose data is its target,
    0o020000 character device). Each member: a 110-byte ASCII header of hex fields,
    the name, then the data, each padded to 4 bytes. The archive ends with TRAILER!!!.
    """
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], start=1):
        nlink = 2 if mode & 0o170000 == 0o040000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(name) + 1, 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_initramfs(busybox: Path) -> bytes:
    """Our whole guest userspace: one static busybox, a few symlinks to it, and /init."""
    entries = [(d, 0o040755, b"", 0) for d in ("bin", "dev", "proc")]
    entries.append(("dev/console", 0o020600, b"", 5 << 8 | 1))   # the kernel opens it for init
    entries.append(("bin/busybox", 0o100755, busybox.read_bytes(), 0))
    entries += [(f"bin/{a}", 0o120777, b"busybox", 0) for a in APPLETS]
    entries.append(("init", 0o100755, INIT.encode(), 0))
    import gzip
    return gzip.compress(cpio_newc(entries), compresslevel=9, mtime=0)


def prepare(progress: Callable[[str], object] = print) -> VMStatus:
    """Fetch the kernel and build the initramfs, once. Returns :func:`status`.

    This is the VM's "image": where a container image holds only userspace files, a VM
    also brings a kernel (with its modules, ~100 MB unpacked) and its own init.
    """
    start, vm = time.monotonic(), cache_dir()
    vm.mkdir(parents=True, exist_ok=True)
    initrd = vm / "initramfs.cpio.gz"
    if _kernel() and initrd.is_file():
        progress(f"VM assets already in {vm} (nothing to fetch): {_kernel().name}, {initrd.name}")
    else:
        with vmfetch.PrivateApt(vm, progress) as apt:   # apt's lists live in a temporary folder, then go
            if not _kernel():
                packages = vmfetch.kernel_packages(apt)
                progress(f"fetching the guest kernel: apt-get download {' '.join(packages)}; dpkg-deb -x")
                apt.fetch(packages, vm / "kernel")
            busybox = None if initrd.is_file() else _busybox(progress, apt)
        if busybox:
            progress(f"building the initramfs from {busybox} (cpio newc, gzip)")
            tmp = initrd.with_suffix(".tmp")
            tmp.write_bytes(build_initramfs(busybox))
            os.replace(tmp, initrd)
        progress(f"VM assets ready in {vm} ({time.monotonic() - start:.1f} s)")
    st = status()
    if not st.ok:
        progress(f"{st.reason}\nWhat to do: {st.fix}")
    return st


# ----------------------------------------------------------------------------- boot


def _die_with_parent() -> Callable[[], object] | None:
    """Linux: a hook that asks the kernel to kill QEMU if Python dies, even by SIGKILL."""
    try:
        import ctypes  # resolved here, in the parent: the hook must not import after fork
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG


def _boot_once(st: VMStatus, accel: str, timeout: float, memory_mb: int) -> tuple[BootResult, str]:
    """Launch QEMU, read its console as it comes, stop the clock at MARKER. Always kill QEMU."""
    cmd = [str(st.qemu), "-no-user-config", "-M", "microvm", "-accel", accel, "-m", str(memory_mb),
           "-nodefaults", "-no-reboot", "-nographic", "-serial", "stdio",
           "-kernel", str(st.kernel), "-initrd", str(st.initramfs), "-append", APPEND]
    out, seconds, why = b"", 0.0, ""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent() if sys.platform == "linux" else None)
    try:
        deadline = t0 + timeout
        while DONE.encode() not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"no {MARKER} line within {timeout:g} s"
                break
            if not select.select([proc.stdout], [], [], left)[0]:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                why = f"QEMU exited (code {proc.wait()}) before the guest finished"
                break
            out += chunk
            if not seconds and MARKER.encode() in out:
                seconds = time.monotonic() - t0
                deadline = time.monotonic() + 5   # grace for the last lines, not timed
            if b"KVM internal error" in out:
                why = "KVM internal error (this machine's KVM cannot run the guest)"
                break
    finally:
        proc.kill()          # a hung or paused guest never exits by itself
        proc.wait()
        proc.stdout.close()
    text = out.decode(errors="replace").replace("\r", "")
    info = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("COURSEKIT-") and " " in line)
    tail = "\n".join(text.strip().splitlines()[-20:])
    res = BootResult(bool(seconds), round(seconds, 3), accel, info.get("COURSEKIT-KERNEL", "").strip(),
                     info.get("COURSEKIT-PID1", "").strip(), tail, tried=[accel])
    return res, why


def boot(*, timeout: float = 30, memory_mb: int = 128, accel: str = "auto") -> BootResult:
    """Boot the VM once; seconds from launching QEMU to the guest's first words.

    The clock covers what a container skips: a machine starting, a kernel unpacking and
    booting, then our /init as PID 1. (A container is a process on the host's kernel.)

    ``accel="auto"`` tries KVM (hardware virtualisation) when /dev/kvm is usable, and
    falls back to TCG (QEMU translating every instruction in software) if that fails;
    when TCG then works, KVM is marked broken for this host kernel (a file in the cache;
    delete it to try KVM again).
    """
    global _kvm_broken
    st = status()
    if not st.ok:
        raise LessonError(st.reason, st.fix)
    order = {"auto": ["kvm", "tcg"] if _kvm_usable() else ["tcg"], "kvm": ["kvm"], "tcg": ["tcg"]}.get(accel)
    if order is None:
        raise LessonError(f"unknown accel {accel!r}", 'use "auto", "kvm" or "tcg"')
    failures = []
    for a in order:
        probe = accel == "auto" and a == "kvm"
        res, why = _boot_once(st, a, min(timeout, KVM_PROBE_SECONDS) if probe else timeout, memory_mb)
        if res.ok:
            res.tried = [f[0] for f in failures] + [a]
            if failures:
                _kvm_broken = a == "tcg"
                if _kvm_broken:
                    with contextlib.suppress(OSError):
                        _verdict_file().write_text(f"{failures[0][1]}\n")
                res.note = f"KVM failed ({failures[0][1]}); used TCG, software emulation, instead"
            elif accel == "auto" and a == "tcg":
                res.note = f"no KVM for this boot: {_kvm_unusable()}; QEMU emulated the CPU in software (TCG)"
            return res
        failures.append((a, why, res.console))
    raise LessonError(
        f"the VM did not boot ({', '.join(f'{x}: {w}' for x, w, _ in failures)}); "
        f"its console said:\n{failures[-1][2] or '(nothing)'}",
        f"give it more time (boot(timeout={max(timeout * 2, 30):g})): software emulation is slow on a busy "
        "machine; if the console shows a kernel panic, rebuild the assets: delete "
        f"{cache_dir()} and run `coursekit vm-assets`")


def measure(n: int = 5, progress: Callable[[str], object] | None = None, **kw) -> list[float]:
    """Boot ``n`` times and return the seconds of each, to report a median, not a lucky run."""
    times = []
    for i in range(n):
        r = boot(**kw)
        times.append(r.seconds)
        if progress:
            progress(f"boot {i + 1}/{n}: {r.seconds:.2f} s ({r.accel})")
    return times


def footprint() -> dict[str, int]:
    """Bytes on disk: the kernel image, its whole package (with modules), the initramfs."""
    st = status()
    if not st.kernel or not st.initramfs:
        raise LessonError("the VM assets are not there yet, so there is nothing to weigh",
                          "run `coursekit vm-assets` (or vm.prepare())")
    tree = cache_dir() / "kernel"
    package = sum(p.lstat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    return {"kernel_image": st.kernel.stat().st_size, "kernel_package": package,
            "initramfs": st.initramfs.stat().st_size}


def main(*, progress: Callable[[str], object] = print) -> int:
    """``coursekit vm-assets``: prepare, then say what is there and how big it is."""
    st = prepare(progress)
    if not st.ok:
        raise LessonError(st.reason, st.fix)
    for k, v in footprint().items():
        progress(f"  {k:15} {v / 1e6:8.1f} MB")
    why = f". Why not KVM: {st.accel_why}" if st.accel_why else ""
    progress(f"QEMU: {st.qemu}; boots with {ACCEL[st.accel]}{why}")
    return 0
