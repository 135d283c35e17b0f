"""The data model of a pipeline definition: action types, actions, stages, the pipeline, and what is wrong with one.

Shared by :mod:`.definition` (reading and registering), :mod:`.rules` (CodePipeline's
structural rules) and everything that runs a definition. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ...errors import CICDError


@dataclass(frozen=True)
class ActionType:
    """An action type: who owns it, its category and provider, and its artifact counts (min, max)."""

    owner: str
    category: str
    provider: str
    inputs: tuple[int, int]
    outputs: tuple[int, int]
    required: tuple[str, ...] = ()          # configuration keys (checked only where ``allowed`` is known)
    allowed: tuple[str, ...] | None = None  # None: configuration not checked (a type coursekit does not run)
    ours: bool = False                      # a coursekit-defined custom action type

    def __str__(self) -> str:
        return f"{self.owner}/{self.category}/{self.provider}"


@dataclass
class ActionDef:
    name: str
    stage: str
    category: str
    owner: str
    provider: str
    version: str
    run_order: int
    configuration: dict[str, str]
    inputs: list[str]
    outputs: list[str]
    type: ActionType | None = None

    @property
    def where(self) -> str:
        return f"stage {self.stage!r}, action {self.name!r}"


@dataclass
class StageDef:
    name: str
    actions: list[ActionDef]

    def groups(self) -> list[list[ActionDef]]:
        """The actions by runOrder, lowest first: each group runs in parallel."""
        orders = sorted({a.run_order for a in self.actions})
        return [[a for a in self.actions if a.run_order == o] for o in orders]


@dataclass
class PipelineDef:
    """A checked definition; :meth:`document` is the JSON CodePipeline (and moto) accept."""

    name: str
    stages: list[StageDef]
    raw: dict = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageDef:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r}: the stages are {', '.join(s.name for s in self.stages)}")

    def actions(self) -> list[ActionDef]:
        return [a for s in self.stages for a in s.actions]

    def document(self, role_arn: str, bucket: str) -> dict:
        """The ``pipeline`` structure, with coursekit's role and bucket where none were given."""
        doc = json.loads(json.dumps(self.raw))
        doc.setdefault("roleArn", role_arn)
        doc.setdefault("artifactStore", {"type": "S3", "location": bucket})
        return doc

    @property
    def bucket(self) -> str | None:
        return (self.raw.get("artifactStore") or {}).get("location")


class PipelineError(CICDError):
    """A definition CodePipeline would refuse; ``problems`` lists ``(rule, where, message)``."""

    def __init__(self, problems: list[tuple[str, str, str, str]]):
        self.problems = problems
        self.rules = [p[0] for p in problems]
        lines = [f"{where}: {msg}" if where else msg for _, where, msg, _ in problems]
        fixes = list(dict.fromkeys(fix for *_, fix in problems if fix))
        head = "the pipeline definition is not valid" + (f" ({len(problems)} problems)" if len(problems) > 1 else "")
        super().__init__(head + ":\n" + "\n".join(f"  - {line}" for line in lines), "; ".join(fixes))
