"""coursekit.lessons.vmfetch: which archive and which kernel package, read from the machine as apt would.

No network here: the real download is exercised by tests/lessons/test_vm.py (as root) and by the
Binder-style run (as a non-root user, tests/course/test_binder_style.py).
"""
from __future__ import annotations

import pytest

from coursekit.lessons import vmfetch
from coursekit.errors import LessonError

MIRROR = "http://mirror.invalid/ubuntu"   # never a real host name in the code

JAMMY_LIST = f"""# a jammy-style sources.list
deb {MIRROR}/ jammy main restricted
# deb-src {MIRROR}/ jammy main restricted
deb {MIRROR}/ jammy-updates main restricted
deb {MIRROR}/ jammy universe
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] {MIRROR}/ jammy-security main # security
deb https://third-party.invalid/node_20.x nodistro main
deb-src {MIRROR}/ jammy-updates main
"""

NOBLE_SOURCES = f"""## Ubuntu's own archive
Types: deb
URIs: {MIRROR}/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb deb-src
URIs: {MIRROR}-security/
Suites: noble-security
Components: universe main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFufwdoBEADv
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: {MIRROR}/
Suites: noble-proposed
Components: main
Enabled: no

Types: deb
URIs: https://third-party.invalid/repo
Suites: stable
Components: main
"""


def test_distribution_from_os_release():
    assert vmfetch.distribution({"ID": "ubuntu", "VERSION_CODENAME": "jammy"}) == ("ubuntu", "jammy")
    assert vmfetch.distribution({"ID": "debian", "VERSION_CODENAME": "bookworm"}) == ("debian", "bookworm")
    # a derivative: its kernels come from the family it names in ID_LIKE
    assert vmfetch.distribution({"ID": "linuxmint", "ID_LIKE": "ubuntu debian", "UBUNTU_CODENAME": "noble"}) \
        == ("ubuntu", "noble")


def test_one_line_sources_keep_this_release_main_only():
    got = vmfetch.one_line_sources(JAMMY_LIST, "jammy")
    assert got == [f"deb {MIRROR}/ jammy main",
                   f"deb {MIRROR}/ jammy-updates main",
                   f"deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] {MIRROR}/ jammy-security main"]


def test_deb822_sources_keep_fields_as_written():
    got = vmfetch.deb822_sources(NOBLE_SOURCES, "noble")
    assert len(got) == 2, got   # the disabled stanza and the third-party one are left out
    first, second = got
    assert "Types: deb\n" in first and "Components: main\n" in first
    assert "Suites: noble noble-updates noble-backports" in first
    assert "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg" in first
    assert second.startswith("Types: deb\n") and "deb-src" not in second   # we download, never build
    assert "\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBFufwdoBEADv\n" in second   # inline key kept
    assert "Ubuntu's own archive" not in first   # comments dropped


def test_machine_sources_reads_both_formats(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(JAMMY_LIST.replace("jammy", "noble"))
    (tmp_path / "sources.list.d" / "ubuntu.sources").write_text(NOBLE_SOURCES)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text(f"deb {MIRROR} noble main\n")
    one, d822 = vmfetch.machine_sources("noble", tmp_path)
    assert len(one) == 3 and len(d822) == 2


def test_machine_sources_without_an_archive_is_a_clear_error(tmp_path):
    (tmp_path / "sources.list").write_text("deb https://third-party.invalid/repo stable main\n")
    with pytest.raises(LessonError) as err:
        vmfetch.machine_sources("bookworm", tmp_path)
    assert "bookworm" in err.value.problem and "sources.list" in err.value.problem
    assert "vmlinuz" in err.value.fix


class FakeApt:
    """What `apt-cache depends` answers, for a few packages."""

    def __init__(self, known: dict[str, list[str]]):
        self.known, self.asked = known, []

    def depends(self, package):
        self.asked.append(package)
        return self.known.get(package)


UBUNTU = {"linux-image-kvm": ["linux-image-6.8.0-1020-kvm"],
          "linux-image-6.8.0-1020-kvm": ["linux-modules-6.8.0-1020-kvm"],
          "linux-image-virtual": ["linux-image-6.8.0-50-generic"],
          "linux-image-6.8.0-50-generic": ["linux-modules-6.8.0-50-generic"]}


def test_ubuntu_gets_the_kvm_kernel_with_its_modules(monkeypatch):
    monkeypatch.delenv("COURSEKIT_VM_KERNEL", raising=False)
    assert vmfetch.kernel_packages(FakeApt(UBUNTU), "ubuntu") == \
        ["linux-image-6.8.0-1020-kvm", "linux-modules-6.8.0-1020-kvm"]
    no_kvm = {k: v for k, v in UBUNTU.items() if "kvm" not in k}
    assert vmfetch.kernel_packages(FakeApt(no_kvm), "ubuntu") == \
        ["linux-image-6.8.0-50-generic", "linux-modules-6.8.0-50-generic"]


def test_debian_gets_the_cloud_kernel(monkeypatch):
    monkeypatch.delenv("COURSEKIT_VM_KERNEL", raising=False)
    apt = FakeApt({"linux-image-cloud-amd64": ["linux-image-6.1.0-56-cloud-amd64"],
                   "linux-image-6.1.0-56-cloud-amd64": ["kmod", "linux-base", "initramfs-tools"]})
    assert vmfetch.kernel_packages(apt, "debian") == ["linux-image-6.1.0-56-cloud-amd64"]
    assert apt.asked[0] == "linux-image-cloud-amd64"


def test_a_named_kernel_wins_and_an_unknown_system_is_explained(monkeypatch):
    monkeypatch.setenv("COURSEKIT_VM_KERNEL", "linux-image-6.8.0-1020-kvm")
    assert vmfetch.kernel_packages(FakeApt(UBUNTU), "debian")[0] == "linux-image-6.8.0-1020-kvm"
    monkeypatch.delenv("COURSEKIT_VM_KERNEL")
    with pytest.raises(LessonError) as err:
        vmfetch.kernel_packages(FakeApt({}), "fedora")
    assert "linux-image-cloud-amd64" in err.value.problem and "linux-image-kvm" in err.value.problem
    assert "COURSEKIT_VM_KERNEL" in err.value.fix
