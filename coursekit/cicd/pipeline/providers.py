"""Which code runs each pipeline action type: the one table, and the call that runs an action.

:data:`PROVIDERS` joins the sources, builds and tests of :mod:`.actions` and the deploys of
:mod:`.deploy`; an action type that is in neither is one coursekit does not run (the error says
which it does run). To add a provider: write its function in :mod:`.actions` or :mod:`.deploy`,
add it to that module's ``PROVIDERS``, and give its type (with its configuration keys) to
:data:`.rules.ACTION_TYPES`. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

from collections.abc import Callable

from . import actions, deploy
from .actions import ActionFailed, Context

PROVIDERS: dict[tuple[str, str, str], Callable[[Context], None]] = {**actions.PROVIDERS, **deploy.PROVIDERS}


def runs() -> str:
    """The action types coursekit runs, in words: "coursekit-Git and S3 sources, CodeBuild builds and tests, ..."."""
    by_category: dict[str, list[str]] = {}
    for _owner, category, provider in PROVIDERS:
        by_category.setdefault(category, []).append(provider)
    groups: dict[tuple[str, ...], list[str]] = {}
    for category, names in by_category.items():
        groups.setdefault(tuple(names), []).append(category.lower() + "s")
    parts = [f"{' and '.join(names)} {' and '.join(kinds)}" for names, kinds in groups.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


def run(ctx: Context) -> None:
    """Run the action's provider; :class:`~.actions.ActionFailed` when it fails or none exists."""
    t = ctx.action.type
    handler = PROVIDERS.get((t.owner, t.category, t.provider)) if t else None
    if handler is None:
        raise ActionFailed(f"coursekit cannot run {t} actions: it runs {runs()}")
    handler(ctx)
