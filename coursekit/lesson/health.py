"""``coursekit doctor``: is this machine ready for the course, and if not, why and what to do.

The same report from Python (``coursekit.doctor()``, shown as a table in a notebook) and from
the shell (``coursekit doctor``, or ``coursekit doctor --json`` for machines).
Introduced in ``00-welcome``.
"""
from __future__ import annotations

import html
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from ..ui.palette import GOOD, WARN

PACKAGES = ("jupyterlab", "ipywidgets", "docker", "boto3", "moto", "nbval", "matplotlib")


@dataclass
class Finding:
    item: str
    value: str
    ok: bool = True
    fix: str = ""


@dataclass(repr=False)
class Report:
    mode: str
    why: str
    to_full: str
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "why": self.why,
            "to_full": self.to_full,
            "findings": [vars(f) for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def __str__(self) -> str:
        width = max(len(f.item) for f in self.findings) if self.findings else 10
        lines = [f"mode: {self.mode}", f"  why: {self.why}"]
        if self.to_full:
            lines.append(f"  to get to full mode: {self.to_full}")
        lines.append("")
        for f in self.findings:
            mark = "ok " if f.ok else "!! "
            lines.append(f"{mark}{f.item.ljust(width)}  {f.value}")
            if f.fix and not f.ok:
                lines.append(f"   {' ' * width}  what to do: {f.fix}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for f in self.findings:
            mark = (f"<span style='color:{GOOD}'>&#10004;</span>" if f.ok
                    else f"<span style='color:{WARN}'>&#9888;</span>")
            fix = f"<br><small>What to do: {html.escape(f.fix)}</small>" if f.fix and not f.ok else ""
            rows.append(f"<tr><td>{mark}</td><td style='text-align:left'>{html.escape(f.item)}</td>"
                        f"<td style='text-align:left'>{html.escape(f.value)}{fix}</td></tr>")
        head = (f"<p><b>Mode: {html.escape(self.mode)}</b> — {html.escape(self.why)}"
                + (f"<br>To get to full mode: {html.escape(self.to_full)}" if self.to_full else "") + "</p>")
        return head + "<table>" + "".join(rows) + "</table>"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return ""


def doctor() -> Report:
    """Check engine, registry, images, the VM tools and package versions; say what to do."""
    from ..docker import engine
    from ..docker.hub import registry_reachable
    from .modes import NO_ENGINE, mode

    m = mode()
    rep = Report(m.name, m.why, m.to_full)
    add = rep.findings.append
    add(Finding("python", platform.python_version()))
    st = engine.status()
    if st.ok:
        add(Finding("docker engine", f"{st.server_version} (API {st.api_version}, {st.os}) at {st.url}"))
    else:
        add(Finding("docker engine", st.reason, False, st.fix))
    if m != NO_ENGINE:
        reachable, detail = registry_reachable()
        add(Finding("image registry", ("reachable: " if reachable else "not reachable: ") + detail, True,
                    "" if reachable else "images are built locally instead (offline mode)"))
        try:
            from ..docker import images

            have = images.present()
            missing = [n for n in images.catalog() if n not in have]
            for name, info in have.items():
                add(Finding(f"image {name}", f"{info.get('size_mb', '?')} MB ({info.get('source', '?')})"))
            for name in missing:
                add(Finding(f"image {name}", "missing", False, "run `coursekit images`"))
        except Exception as exc:  # the images module reports its own problems
            add(Finding("course images", f"could not list: {exc}", False, "run `coursekit images`"))
    else:
        add(Finding("image registry", "not checked (no engine)"))
    try:
        from ..lessons import vm

        vs = vm.status()
        if vs.ok:
            add(Finding("virtual machine (QEMU)", f"ready ({vs.qemu})"))
        else:
            add(Finding("virtual machine (QEMU)", vs.reason, False, vs.fix))
    except Exception as exc:
        add(Finding("virtual machine (QEMU)", f"could not check: {exc}", False, ""))
    for pkg in PACKAGES:
        v = _version(pkg)
        add(Finding(pkg, v or "not installed", bool(v), "" if v else f"pip install {pkg}"))
    return rep


def main(*, as_json: bool = False) -> int:
    rep = doctor()
    print(rep.to_json() if as_json else rep)
    return 0
