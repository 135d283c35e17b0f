"""Long work shows progress: a ``progress`` argument is called with one line of text at a time.

``print`` is one (the default of most long calls), ``None`` means quiet. Builds, image
provisioning, pushes, pipelines and grading all take one.
"""
from __future__ import annotations

from typing import Callable, Optional

#: What a ``progress=`` argument is: a callable taking one line of text, or None for quiet.
Progress = Optional[Callable[[str], None]]
