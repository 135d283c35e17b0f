"""The VM's kernel, fetched with apt by any user, on a machine whose apt lists may be gone.

A VM needs a kernel file to boot. Installing a kernel package needs root, and Ubuntu makes
an installed ``/boot/vmlinuz-*`` readable by root only. So we do by hand what apt would do:
ask the distribution's own archive (the mirror this machine's apt sources name) for the
package, download the ``.deb`` and unpack it with ``dpkg-deb -x`` into the user's cache,
where its files belong to the user.

apt runs with a private, temporary state (package lists, download cache, no locks): this
works as a non-root user, on images whose apt lists were deleted after installing (Binder,
most container images), and never touches the machine's own apt state.

Which kernel: a small one made for virtual machines, picked by distribution (:data:`KERNELS`).
``COURSEKIT_VM_KERNEL`` names another package instead.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import LessonError

#: Meta-packages that depend on the newest kernel of a flavour made for VMs, best first.
#: Debian's cloud kernel and Ubuntu's kvm kernel: no drivers for real hardware, small, quick to boot.
KERNELS = {
    "debian": ("linux-image-cloud-amd64", "linux-image-amd64"),
    "ubuntu": ("linux-image-kvm", "linux-image-virtual"),
}
APT_DIR = Path("/etc/apt")
_IMAGE = re.compile(r"^linux-image-(unsigned-)?\d")


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def distribution(info: dict[str, str] | None = None) -> tuple[str, str]:
    """(family, codename): "debian" or "ubuntu" (or the ID of another system) and e.g. "bookworm"."""
    info = os_release() if info is None else info
    ids = [info.get("ID", "")] + info.get("ID_LIKE", "").split()
    family = next((i for i in ids if i in KERNELS), ids[0])
    return family, info.get("VERSION_CODENAME", "") or info.get("UBUNTU_CODENAME", "")


# ----------------------------------------------------------------------------- the machine's sources


def _keep(suite: str, codename: str) -> bool:
    return not codename or suite == codename or suite.startswith(codename + "-")


def one_line_sources(text: str, codename: str) -> list[str]:
    """The ``deb`` lines of a sources.list for this release (and its -updates, -security), main only."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)((?:\s+[^\s#]+)*)", line)
        if m and _keep(m.group(3), codename) and "main" in m.group(4).split():
            out.append(f"deb {m.group(1) or ''}{m.group(2)} {m.group(3)} main")
    return out


def deb822_sources(text: str, codename: str) -> list[str]:
    """The same for the deb822 format (``*.sources``): stanzas kept with their other fields as written."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: list[list[str]] = []          # [key, first line, continuation lines...]
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and fields:
                fields[-1].append(line)
            elif ":" in line:
                key, value = line.split(":", 1)
                fields.append([key.strip(), value.strip()])
        get = {f[0].lower(): f[1] for f in fields}
        suites = [s for s in get.get("suites", "").split() if _keep(s, codename)]
        if (get.get("enabled", "yes").lower() == "no" or "deb" not in get.get("types", "").split()
                or not suites or "main" not in get.get("components", "").split()):
            continue
        fixed = {"types": "deb", "suites": " ".join(suites), "components": "main"}
        out.append("\n".join(f"{f[0]}: {fixed.get(f[0].lower(), f[1])}" + "".join(f"\n{c}" for c in f[2:])
                             for f in fields))
    return out


def machine_sources(codename: str, apt_dir: Path = APT_DIR) -> tuple[list[str], list[str]]:
    """(one-line entries, deb822 stanzas) of this machine's apt sources for its own release."""
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    one = [e for p in lists if p.is_file() for e in one_line_sources(p.read_text(errors="replace"), codename)]
    d822 = [e for p in sorted((apt_dir / "sources.list.d").glob("*.sources"))
            for e in deb822_sources(p.read_text(errors="replace"), codename)]
    if not one and not d822:
        raise LessonError(
            f"this machine's apt sources ({apt_dir}/sources.list, {apt_dir}/sources.list.d/) name no archive "
            f"for {codename or 'this release'} with a `main` component, so there is nowhere to fetch a kernel from",
            "add the distribution's archive to the apt sources (as the distribution's images have it), or put a "
            "bzImage at ~/.cache/coursekit/vm/kernel/boot/vmlinuz-<release> yourself")
    return one, d822


# ----------------------------------------------------------------------------- apt with a private state


class PrivateApt:
    """``apt-get``/``apt-cache`` with their own lists and cache in a temporary folder under ``parent``.

    Use as a context manager: the folder (package lists included) is removed at the end.
    The package lists are downloaded once, on first need.
    """

    def __init__(self, parent: Path, progress: Callable[[str], object] = print):
        self.parent, self.progress = parent, progress
        self.dir: Path | None = None
        self._updated = False

    def __enter__(self) -> PrivateApt:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(dir=self.parent, prefix=".apt-"))
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def options(self) -> list[str]:
        d = self.dir
        opts = {"Dir::State::Lists": d / "lists", "Dir::Cache": d / "cache", "Dir::Etc::sourcelist": d / "sources.list",
                "Dir::Etc::sourceparts": d / "sources.list.d", "Debug::NoLocking": "1",
                "Acquire::Languages": "none", "Acquire::GzipIndexes": "true"}
        if os.geteuid() == 0:   # root's apt downloads as _apt, which may not enter a private cache folder
            opts["APT::Sandbox::User"] = "root"
        return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]

    def run(self, tool: str, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        if not shutil.which(tool):
            raise LessonError(f"`{tool}` is not on this machine, so the guest kernel cannot be fetched",
                              "fetching the kernel needs Debian or Ubuntu (or an image based on them); elsewhere, "
                              "put a bzImage at ~/.cache/coursekit/vm/kernel/boot/vmlinuz-<release> yourself")
        cmd = [tool, *(self.options() if tool.startswith("apt") else []), *args]
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                           env={**os.environ, "LC_ALL": "C"})
        if check and r.returncode:
            raise LessonError(f"`{' '.join([tool, *args])}` failed: {(r.stderr or r.stdout).strip()[-600:]}",
                              "check that this machine reaches its package archive (the mirror in its apt "
                              "sources), then run `coursekit vm-assets` again")
        return r

    def update(self) -> None:
        if self._updated:
            return
        one, d822 = machine_sources(distribution()[1])
        for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "sources.list").write_text("".join(f"{e}\n" for e in one))
        (self.dir / "sources.list.d" / "archive.sources").write_text("".join(f"{e}\n\n" for e in d822))
        self.progress(f"apt-get update (package lists of this machine's own archive, main only, "
                      f"into a temporary folder: {len(one) + len(d822)} source entries)")
        self.run("apt-get", "-q", "update")
        self._updated = True

    def depends(self, package: str) -> list[str] | None:
        """The packages ``package`` depends on (its candidate version); None if apt does not know it."""
        self.update()
        r = self.run("apt-cache", "depends", package, check=False)
        if r.returncode:
            return None
        deps = [line.split(":", 1)[1].strip() for line in r.stdout.splitlines()
                if line.strip().lstrip("|").startswith("Depends:")]
        return [d for d in deps if not d.startswith("<")]   # <virtual> packages have no file to fetch

    def fetch(self, packages: list[str], into: Path) -> None:
        """``apt-get download`` the packages, unpack them all into ``into`` (replaced); no .deb is kept."""
        self.update()
        with tempfile.TemporaryDirectory(dir=into.parent, prefix=".fetch-") as tmp:
            self.run("apt-get", "-q", "download", *packages, cwd=Path(tmp))
            tree = Path(tmp) / "tree"
            tree.mkdir()
            for deb in sorted(Path(tmp).glob("*.deb")):
                self.run("dpkg-deb", "-x", str(deb), str(tree))
            shutil.rmtree(into, ignore_errors=True)
            os.replace(tree, into)


def kernel_packages(apt: PrivateApt, family: str | None = None) -> list[str]:
    """The kernel image package to fetch, plus its separate modules package where there is one (Ubuntu).

    The meta-package always depends on the newest kernel of its flavour, so asking apt
    which one it depends on gives today's kernel without writing a version down.
    """
    if os.environ.get("COURSEKIT_VM_KERNEL"):
        image = os.environ["COURSEKIT_VM_KERNEL"]
    else:
        family = family or distribution()[0]
        metas = KERNELS.get(family) or tuple(m for ms in KERNELS.values() for m in ms)
        image = next((d for m in metas for d in (apt.depends(m) or []) if _IMAGE.match(d)), None)
        if not image:
            raise LessonError(f"apt knows none of the kernel packages {', '.join(metas)} here",
                              "name one for this system: COURSEKIT_VM_KERNEL=linux-image-<release> "
                              "coursekit vm-assets")
    modules = [d for d in apt.depends(image) or [] if d.startswith("linux-modules-") and "-extra-" not in d]
    return [image, *modules]
