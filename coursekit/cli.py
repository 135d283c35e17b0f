"""The ``coursekit`` command: a thin layer over the Python API.

Each sub-command calls one function with keyword arguments; the defaults live in that
function, not here.
"""
from __future__ import annotations

import argparse
import sys

from .errors import CoursekitError


def _doctor(a) -> int:
    from .lesson.health import main

    return main(as_json=a.json)


def _images(a) -> int:
    from .docker.images import main

    return main(names=a.names or None, force=a.force) or 0


def _clean(a) -> int:
    from .docker import engine

    print(engine.clean(images=a.images))
    return 0


def _assign(a) -> int:
    from .exercises.assign import main

    stale = main(sources=a.sources or None, out=a.out, check=a.check)
    if a.check and stale:
        print("exercises out of date (run `coursekit assign`):\n  " + "\n  ".join(map(str, stale)))
        return 1
    return 0


def _lint(a) -> int:
    from .dockerfile.linter import main

    return main(paths=a.paths, as_json=a.json)


def _vm_assets(a) -> int:
    from .lessons.vm import main

    return main() or 0


_TYPES = {"float": float, "int": int, "str": str}  # a limit's annotation (text, as `annotations` keeps it) -> a type


def _grade(a) -> int:
    from .dockerfile.limits import limit_flags
    from .grading.classroom import grade
    from .grading.limits import GradeLimits

    given = {f.name: getattr(a, f.name) for f in limit_flags(GradeLimits) if getattr(a, f.name) is not None}
    grade(a.submissions, a.assignment, a.out, workers=a.workers, limits=GradeLimits(**given),
          students=a.student or None, questions=a.question or None, cluster="swarm" if a.swarm else "local",
          image=a.image)  # it prints its progress and summary
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .dockerfile.limits import limit_flags
    from .grading.limits import GradeLimits

    p = argparse.ArgumentParser(prog="coursekit", description="Helpers for the deployment course.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("doctor", help="is this machine ready? mode, engine, images, versions")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_doctor)

    s = sub.add_parser("images", help="make sure every image the course uses exists (pull, or build offline)")
    s.add_argument("names", nargs="*", help="only these images (default: all)")
    s.add_argument("--force", action="store_true", help="rebuild even if present")
    s.set_defaults(func=_images)

    s = sub.add_parser("clean", help="remove every container, network, volume and service coursekit started")
    s.add_argument("--images", action="store_true", help="also remove throw-away images lessons built")
    s.set_defaults(func=_clean)

    s = sub.add_parser("assign", help="generate the student versions in exercises/ from solutions/")
    s.add_argument("sources", nargs="*", help="solution notebooks (default: solutions/*.ipynb)")
    s.add_argument("--out", default="exercises", help="where to write the student versions")
    s.add_argument("--check", action="store_true", help="only report out-of-date exercises; exit 1 if any")
    s.set_defaults(func=_assign)

    s = sub.add_parser("lint", help="check Dockerfiles for common mistakes (rule ids, reasons, fixes)")
    s.add_argument("paths", nargs="*", default=["Dockerfile"], help="Dockerfiles or folders (default: ./Dockerfile)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_lint)

    s = sub.add_parser("grade", help="grade a folder of submissions, each in its own sandbox, in parallel")
    s.add_argument("submissions", help="folder with one folder (or .ipynb) per student")
    s.add_argument("--assignment", required=True, help="the solution notebook, e.g. solutions/09-cloud-computing.ipynb")
    s.add_argument("--out", required=True, help="folder for gradebook.csv, feedback/, class.png, grade.log, state")
    s.add_argument("--workers", type=int, help="sandboxes at a time (default: the number of CPU cores)")
    s.add_argument("--student", action="append", help="grade this student again, even if done (repeatable)")
    s.add_argument("--question", action="append", help="re-score only this question from saved answers (repeatable)")
    for f in limit_flags(GradeLimits):  # the limits declared with cli=True, their help and default
        default = f"{f.default:g}" if isinstance(f.default, float) else f.default
        s.add_argument("--" + f.name.replace("_", "-"), type=_TYPES[f.type],
                       help=f"{f.metadata['help']} (default {default})")
    s.add_argument("--swarm", action="store_true",
                   help="run the sandboxes as one Docker Swarm job (turns on a one-node swarm if needed)")
    s.add_argument("--image", help="the sandbox image to run (default: built here); on a cluster, pushed to a registry")
    s.set_defaults(func=_grade)

    s = sub.add_parser("vm-assets", help="fetch the kernel and build the initramfs for the VM lesson")
    s.set_defaults(func=_vm_assets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CoursekitError as exc:
        print(f"coursekit: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"What to do: {exc.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coursekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
