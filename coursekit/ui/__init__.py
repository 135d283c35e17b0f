"""What the learner sees: plots (:mod:`.plots`).

Rule: imports only :mod:`coursekit.errors`; matplotlib, IPython and ipywidgets are imported inside
the functions that draw.
"""
from __future__ import annotations

__all__ = ["plots"]
