"""Plots the lessons share: measured times side by side, sizes side by side.

Each function returns the matplotlib ``Figure`` and shows it; nothing here invents data:
you pass in what was measured.
"""
from __future__ import annotations

import statistics

from .notebook import in_notebook
from .palette import DARK, LIGHT, WARM


def pyplot():
    """matplotlib's pyplot; outside a notebook (scripts, tests) it draws to files and never opens a window."""
    import matplotlib

    if not in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show(plt, fig, save: str | None = None):
    """Lay the figure out, save it if asked, show it in a notebook; returns it."""
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=100)
    if in_notebook():
        plt.show()
    return fig


def finish(plt, fig, ax, title: str, save: str | None):
    """Title, first row at the top (for horizontal bars), then :func:`show`."""
    ax.set_title(title)
    ax.invert_yaxis()
    return show(plt, fig, save)


def compare_times(samples: dict[str, list[float]], *, title: str, unit: str = "s", save: str | None = None):
    """One strip of dots per thing measured (every sample shown) with its median as a bar."""
    plt = pyplot()
    labels = list(samples)
    meds = [statistics.median(samples[k]) for k in labels]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.8 * len(labels)))
    ax.barh([f"{k}\n({len(samples[k])} run{'' if len(samples[k]) == 1 else 's'})" for k in labels], meds, color=LIGHT, label="median")
    for i, k in enumerate(labels):
        ax.plot(samples[k], [i] * len(samples[k]), "o", color=DARK, alpha=0.7, markersize=4)
        ax.annotate(f"{meds[i]:.2f} {unit}", (meds[i], i), xytext=(4, 8), textcoords="offset points", fontsize=9)
    ax.set_xlim(0, max(max(v) for v in samples.values()) * 1.15)
    ax.set_xlabel("seconds (each dot is one run; the bar is the median)")
    return finish(plt, fig, ax, title, save)


def human_size(n: float) -> str:
    """Bytes as a learner reads them: ``812 B``, ``10.2 kB``, ``74.0 MB``, ``1.21 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n:,.0f} B"


def compare_sizes(sizes: dict[str, float], *, title: str, log: bool = True, save: str | None = None):
    """Horizontal bars of sizes in MB (log scale by default: the sizes span orders of magnitude)."""
    plt = pyplot()
    labels = list(sizes)
    mb = [max(sizes[k], 1) / 1e6 for k in labels]  # (1 byte at least: a log axis has no zero)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.6 * len(labels)))
    ax.barh(labels, mb, color=WARM)
    for i, v in enumerate(mb):
        ax.annotate(human_size(sizes[labels[i]]), (v, i), xytext=(4, -3), textcoords="offset points", fontsize=9)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(mb) / 2, max(mb) * 4)  # room for the labels
    else:
        ax.set_xlim(0, max(mb) * 1.2)
    ax.set_xlabel("size in MB" + (" (log scale)" if log else ""))
    return finish(plt, fig, ax, title, save)
