"""Helpers that exist for one lesson each; the top of the package's graph.

:mod:`.vm` and :mod:`.vmfetch` (01: a real VM), :mod:`.processes` (01: a container is a process),
:mod:`.explorer` (03: the layer explorer), :mod:`.containers` and :mod:`.postgres` (04),
:mod:`.dockerfiles` (05), :mod:`.cloudmodels` (09), :mod:`.ec2states` (11).

Rule: may import any subpackage but :mod:`coursekit.grading`; nothing but :mod:`coursekit.lesson`
and the CLI imports these.
"""
from __future__ import annotations

__all__ = ["cloudmodels", "containers", "dockerfiles", "ec2states", "explorer", "postgres", "processes", "vm",
           "vmfetch"]
