"""coursekit.lessons.vm: a real VM is fetched, built, booted, timed, and always cleaned up.

The boot tests really run QEMU. On Debian as root (the course's build machine, whose
set-up installs qemu-system-x86) a missing QEMU is a failure, not a skip; elsewhere the
tests that need QEMU or apt skip and say why.
"""
from __future__ import annotations

import gzip
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.lessons import vm, vmfetch
from coursekit.errors import LessonError

DEBIAN_ROOT = Path("/etc/debian_version").exists() and os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]


def _static_busybox() -> Path:
    for cand in (Path("/bin/busybox"), Path(shutil.which("busybox") or "/bin/busybox")):
        if cand.is_file() and vm.is_static_elf(cand):
            return cand
    if DEBIAN_ROOT:
        pytest.fail("no static busybox at /bin/busybox: the test set-up installs busybox-static")
    pytest.skip("busybox-static is not installed (only installed for you on Debian as root)")


def _need_qemu_and_apt() -> None:
    missing = [c for c in ("qemu-system-x86_64", "apt-get", "dpkg-deb") if not shutil.which(c)]
    if not missing:
        return
    if DEBIAN_ROOT:
        pytest.fail(f"missing {missing}: on Debian as root the test set-up installs qemu-system-x86")
    pytest.skip(f"not Debian as root and {missing} missing: cannot fetch a kernel or run QEMU here")


def _qemu_pids() -> set[int]:
    r = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split()}


def _cpio(args: list[str], data: bytes, cwd: Path) -> str:
    r = subprocess.run([str(_static_busybox()), "cpio", *args], input=data, cwd=cwd, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


# ------------------------------------------------------------------ no QEMU needed


def test_cpio_writer_is_read_back_by_real_cpio(tmp_path):
    entries = [
        ("etc", 0o040755, b"", 0),
        ("etc/motd", 0o100644, b"hello from newc\n", 0),
        ("etc/odd", 0o100600, b"x" * 4099, 0),            # a size that needs padding
        ("run.sh", 0o100755, b"#!/bin/sh\necho hi\n", 0),
        ("etc/greeting", 0o120777, b"motd", 0),           # symlink: data is the target
        ("dev", 0o040755, b"", 0),
        ("dev/console", 0o020600, b"", 5 << 8 | 1),
    ]
    archive = vm.cpio_newc(entries)
    assert archive.startswith(b"070701") and len(archive) % 4 == 0
    listing = _cpio(["-tv"], archive, tmp_path)
    assert [line.split()[-1] if "->" not in line else line.split()[-3] for line in listing.splitlines()] == \
        [name for name, *_ in entries]
    assert "etc/greeting -> motd" in listing
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------"), console

    out = tmp_path / "x"
    out.mkdir()
    _cpio(["-i", "-d"], vm.cpio_newc([e for e in entries if e[0] != "dev/console"]), out)
    assert (out / "etc/motd").read_bytes() == b"hello from newc\n"
    assert (out / "etc/odd").read_bytes() == b"x" * 4099
    assert stat.S_IMODE((out / "etc/odd").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "etc/motd").stat().st_mode) == 0o644
    assert (out / "etc/greeting").is_symlink() and os.readlink(out / "etc/greeting") == "motd"
    assert (out / "etc/greeting").read_text() == "hello from newc\n"


def test_initramfs_holds_busybox_symlinks_and_init(tmp_path):
    busybox = _static_busybox()
    archive = gzip.decompress(vm.build_initramfs(busybox))
    listing = _cpio(["-tv"], archive, tmp_path)
    for applet in vm.APPLETS:
        assert f"bin/{applet} -> busybox" in listing
    assert any(line.startswith("crw") and line.endswith("dev/console") for line in listing.splitlines())
    out = tmp_path / "root"
    out.mkdir()
    _cpio(["-i", "-d", "init", "bin/busybox"], archive, out)
    init = out / "init"
    assert init.read_text().startswith("#!/bin/busybox sh\n")
    assert vm.MARKER in init.read_text() and "poweroff -f" in init.read_text()
    assert stat.S_IMODE(init.stat().st_mode) == 0o755
    assert (out / "bin/busybox").read_bytes() == busybox.read_bytes()
    assert vm.build_initramfs(busybox) == vm.build_initramfs(busybox), "the archive should be reproducible"


def test_static_elf_check_tells_static_from_dynamic():
    assert vm.is_static_elf(_static_busybox())
    assert not vm.is_static_elf(Path(sys.executable).resolve())   # python links libc dynamically
    assert not vm.is_static_elf(Path(vm.__file__))                  # not ELF at all


def test_status_without_qemu_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSEKIT_QEMU", "")
    st = vm.status()
    assert not st.ok and st.qemu is None and st.accel is None
    assert "QEMU" in st.reason and "kernel" in st.reason and "initramfs" in st.reason
    assert "apt-get install --no-install-recommends qemu-system-x86" in st.fix
    assert "coursekit vm-assets" in st.fix
    with pytest.raises(LessonError) as err:
        vm.boot(timeout=5)
    assert "QEMU" in err.value.problem and "qemu-system-x86" in err.value.fix
    with pytest.raises(LessonError, match="vm-assets"):
        vm.footprint()


def test_status_with_qemu_but_no_assets(monkeypatch, tmp_path):
    _need_qemu_and_apt()
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    st = vm.status()
    assert not st.ok and st.qemu is not None and st.accel in {"kvm", "tcg"}
    assert "QEMU" not in st.reason and "kernel" in st.reason
    assert st.fix.startswith("run `coursekit vm-assets`")


# ------------------------------------------------------------------ real assets, real QEMU


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A fresh cache: prepare() really runs apt-get download + dpkg-deb -x and builds the initramfs."""
    _need_qemu_and_apt()
    old = os.environ.get("COURSEKIT_CACHE")
    os.environ["COURSEKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        lines: list[str] = []
        st = vm.prepare(progress=lines.append)
        assert st.ok, (st.reason, st.fix, lines)
        assert any("apt-get download linux-image-" in x for x in lines), lines
        # apt's package lists and download cache lived in a temporary folder: nothing of it is left
        assert not [p.name for p in vm.cache_dir().iterdir() if p.name.startswith(".")], list(vm.cache_dir().iterdir())
        yield st
    finally:
        if old is None:
            os.environ.pop("COURSEKIT_CACHE", None)
        else:
            os.environ["COURSEKIT_CACHE"] = old


def test_prepare_is_idempotent_and_fetches_nothing_twice(assets, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in (assets.kernel, assets.initramfs)}

    def no_apt(self, tool, *args, **kw):
        raise AssertionError(f"prepare ran {tool} {args} although everything was there")

    monkeypatch.setattr(vmfetch.PrivateApt, "run", no_apt)
    lines: list[str] = []
    t0 = time.monotonic()
    st = vm.prepare(progress=lines.append)
    assert time.monotonic() - t0 < 1.0
    assert st.ok and "already" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in (st.kernel, st.initramfs)} == before
    assert not list(vm.cache_dir().glob("**/*.deb")), "the .deb should not be kept"


def test_footprint_weighs_kernel_package_and_initramfs(assets):
    fp = vm.footprint()
    assert set(fp) == {"kernel_image", "kernel_package", "initramfs"}
    assert fp["kernel_package"] > fp["kernel_image"] > fp["initramfs"] > 500_000
    assert fp["kernel_image"] == assets.kernel.stat().st_size


def test_real_boot_reaches_userspace(assets):
    before = _qemu_pids()
    r = vm.boot(timeout=60)
    assert r.ok and 0 < r.seconds < 60
    assert r.accel in {"kvm", "tcg"} and r.tried[-1] == r.accel
    assert vm.MARKER in r.console
    assert r.kernel_release and assets.kernel.name == f"vmlinuz-{r.kernel_release}"
    assert r.pid1 == "init"   # in a VM, our own /init is PID 1
    if r.tried == ["kvm", "tcg"]:
        assert "KVM failed" in r.note and vm.status().accel == "tcg"   # the verdict is remembered
        assert vm._verdict_file().exists()   # ...by the next Python process too
    assert not (_qemu_pids() - before)


def test_without_access_to_dev_kvm_the_boot_is_emulated_and_says_so(assets, monkeypatch):
    """A user who may not open /dev/kvm (Binder, most non-root users): TCG at once, and the reason shown."""
    real_access = os.access
    monkeypatch.setattr(vm.os, "access", lambda p, mode: False if str(p) == "/dev/kvm" else real_access(p, mode))
    monkeypatch.setattr(vm, "_kvm_broken", False)
    verdict = vm._verdict_file()
    if verdict.exists():   # a verdict from an earlier boot would be the reason instead
        monkeypatch.setattr(vm, "_verdict_file", lambda: verdict.with_name("no-verdict-here"))
    st = vm.status()
    assert st.ok and st.accel == "tcg" and "software" in st.reason and "slower" in st.reason
    assert "/dev/kvm" in st.accel_why
    r = vm.boot(timeout=60)
    assert r.ok and r.accel == "tcg" and r.tried == ["tcg"], r   # KVM not even tried
    assert "/dev/kvm" in r.note and "TCG" in r.note


def test_measure_returns_positive_times(assets):
    seen: list[str] = []
    times = vm.measure(2, progress=seen.append, timeout=60)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert seen[0].startswith("boot 1/2:")


def test_impossible_timeout_is_a_clear_error_and_leaves_no_qemu(assets):
    before = _qemu_pids()
    t0 = time.monotonic()
    with pytest.raises(LessonError) as err:
        vm.boot(timeout=0.05)
    assert time.monotonic() - t0 < 10
    assert "did not boot" in err.value.problem and "within 0.05 s" in err.value.problem
    assert "timeout" in err.value.fix
    assert not (_qemu_pids() - before), "boot() left a QEMU process behind"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_or_killed_python_leaves_no_qemu(assets, sig):
    """Ctrl-C runs boot()'s clean-up; SIGKILL is caught by the kernel (PR_SET_PDEATHSIG)."""
    code = "from coursekit import vm; vm.boot(timeout=120, accel='tcg')"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        qemu: set[int] = set()
        deadline = time.monotonic() + 20
        while not qemu and time.monotonic() < deadline:
            r = subprocess.run(["pgrep", "-P", str(child.pid), "-f", "qemu-system"], capture_output=True, text=True)
            qemu = {int(p) for p in r.stdout.split()}
            time.sleep(0.05)
        assert qemu, "the child never started QEMU"
        child.send_signal(sig)
        child.wait(timeout=20)
        deadline = time.monotonic() + 5
        while qemu & _qemu_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (qemu & _qemu_pids()), f"QEMU {qemu} outlived its Python parent"
    finally:
        child.kill()
        child.wait()


def test_main_reports_assets_and_sizes(assets):
    lines: list[str] = []
    assert vm.main(progress=lines.append) == 0
    text = "\n".join(lines)
    assert "already" in text and "kernel_package" in text and "QEMU:" in text
