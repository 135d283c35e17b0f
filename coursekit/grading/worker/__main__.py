"""``python3 -m coursekit.grading.worker [--queue URL]``: the sandbox's PID 1; ``... kernel -f FILE``: its kernel."""
import sys

from .serve import kernel_main, main

if sys.argv[1:2] == ["kernel"]:
    kernel_main(sys.argv[2:])
else:
    sys.exit(main())
