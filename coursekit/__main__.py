"""``python -m coursekit``: the ``coursekit`` command (:mod:`coursekit.cli`)."""
import sys

from .cli import main

sys.exit(main())
