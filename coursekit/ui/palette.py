"""The course's colours: one palette, each colour named for what it means.

Every widget, table and plot takes its colours from here, so that green always means "it
worked", red "it failed", orange "not yet, or not quite", blue "running now", grey "idle or
not run". Where a colour carries meaning it also comes with a word or a symbol (✔, ✘), for
readers who do not see it. The state colours are GitHub's Primer colours, readable on white.

>>> GOOD, BAD
('#1a7f37', '#cf222e')
"""
from __future__ import annotations

# -- states: what happened
GOOD = "#1a7f37"    # passed, succeeded, running, seen and allowed, added
BAD = "#cf222e"     # failed, refused, deleted, over a limit
WARN = "#b35900"    # not yet or not quite: starting, stopped, timed out, a warning, changed
BUSY = "#0969da"    # in progress
MUTED = "#6e7781"   # idle, skipped, not run, shut down; secondary text
FAINT = "#b0b0b0"   # what did not happen (a transition not seen), what was not sent
INK = "#222222"     # plain lines: demand, text

# -- the same states as light backgrounds (boxes behind text)
BACKGROUND = {GOOD: "#dafbe1", BAD: "#ffebe9", WARN: "#fff1e5", BUSY: "#ddf4ff", MUTED: "#f6f8fa"}
CODE_BACKGROUND = "#f6f8fa"

# -- series in plots that compare measured things (no state meant)
LIGHT = "#9ecae1"   # bars of medians, idle capacity
DARK = "#08519c"    # single measurements, outlines
WARM = "#fdae6b"    # sizes
HIGHLIGHT = "#e6550d"  # what this step added (bytes pushed)
PURPLE = "#6f42c1"  # a third way (buying servers)
GOLD = "#d4a017"    # a second way (reserved + on-demand), offline, waiting for an engine
BILLED_BOX = ("#fff3c4", "#b08800")   # fill and edge of a state AWS bills for
PLAIN_BOX = ("#eef2f7", "#57606a")    # fill and edge of any other state
