"""CodePipeline's structural rules, checked by :func:`coursekit.cicd.pipeline.definition.load`; the known action types.

From CodePipeline's "pipeline structure reference" (pipeline, stage and action declarations),
its API reference and its table of input/output artifacts per action type:

* at least two stages; stage names unique; every stage has at least one action;
* the first stage holds source actions, at least one, and nothing else; no other stage holds
  a source action (so some stage holds an action that is not a source);
* action names unique within their stage; names of pipelines, stages and actions are 1-100
  characters of ``A-Z a-z 0-9 . @ - _``; artifact names 1-100 of ``A-Z a-z 0-9 _ -``;
* ``actionTypeId``: ``category`` one of Source, Build, Test, Deploy, Approval, Invoke;
  ``owner`` AWS, ThirdParty or Custom; a ``provider`` that exists for that owner and
  category; ``version`` ``"1"`` (text, as the API wants every version and configuration value);
* ``runOrder`` a whole number from 1 to 999 (default 1); the same number runs in parallel;
* each provider's number of input and output artifacts (:data:`ACTION_TYPES`: ``S3`` source:
  0 in, 1 out; ``CodeBuild``: 1-5 in, 0-5 out; ``ECS`` deploy: 1 in, 0 out; ...);
* output artifact names are unique in the pipeline, and every input artifact is the output of
  an action that runs before it: in an earlier stage, or earlier in the same stage (a lower
  ``runOrder``). An input nobody produces (a *dangling* artifact) is named, with the closest
  output names as suggestions;
* for the providers coursekit runs, the configuration's required keys are there and no key
  is unknown, as CodePipeline checks against the action type's configuration properties.

Each problem is a ``(rule, where, message, fix)``; all are reported together in one
:class:`~coursekit.cicd.pipeline.definition.PipelineError` (CodePipeline stops at the first). Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from .model import ActionDef, ActionType, PipelineDef, PipelineError, StageDef

CATEGORIES = ("Source", "Build", "Test", "Deploy", "Approval", "Invoke")
OWNERS = ("AWS", "ThirdParty", "Custom")
NAME = re.compile(r"[A-Za-z0-9.@\-_]{1,100}\Z")
ARTIFACT = re.compile(r"[A-Za-z0-9_\-]{1,100}\Z")
PROVIDER = re.compile(r"[0-9A-Za-z_\-]{1,35}\Z")
BUCKET = re.compile(r"[a-zA-Z0-9\-.]{3,63}\Z")
ROLE_ARN = re.compile(r"arn:aws(-[\w]+)*:iam::[0-9]{12}:role/.+\Z")
_PIPELINE_KEYS = ("name", "roleArn", "artifactStore", "artifactStores", "stages", "version", "executionMode",
                  "pipelineType", "variables", "triggers")
_STAGE_KEYS = ("name", "actions", "blockers", "beforeEntry", "onSuccess", "onFailure")
_ACTION_KEYS = ("name", "actionTypeId", "runOrder", "configuration", "inputArtifacts", "outputArtifacts",
                "roleArn", "region", "namespace", "timeoutInMinutes")
_NOT_ACTED_ON = {"triggers": "the pipeline starts when you call run()", "variables": "pipeline variables are not "
                 "substituted", "beforeEntry": "stage conditions are not evaluated", "onSuccess": "stage conditions "
                 "are not evaluated", "onFailure": "a failed stage is not rolled back automatically", "namespace":
                 "action variables are not substituted", "region": "everything runs in the sandbox's region",
                 "roleArn": "no role is assumed", "timeoutInMinutes": "actions have no time limit but the build's",
                 "executionMode": "executions run one at a time, when you call run()"}


def _t(owner, category, provider, inputs, outputs, required=(), optional=None, ours=False) -> ActionType:
    allowed = None if optional is None else tuple(required) + tuple(optional)
    return ActionType(owner, category, provider, inputs, outputs, tuple(required), allowed, ours)


_CODEBUILD = (("ProjectName",), ("PrimarySource", "EnvironmentVariables", "BatchEnabled", "CombineArtifacts"))
#: The action types this module knows: CodePipeline's table of artifact counts, plus coursekit's own.
ACTION_TYPES: tuple[ActionType, ...] = (
    _t("AWS", "Source", "S3", (0, 0), (1, 1), ("S3Bucket", "S3ObjectKey"),
       ("PollForSourceChanges", "AllowOverrideForS3ObjectKey")),
    _t("AWS", "Source", "CodeCommit", (0, 0), (1, 1)),
    _t("AWS", "Source", "ECR", (0, 0), (1, 1)),
    _t("AWS", "Source", "CodeStarSourceConnection", (0, 0), (1, 1)),
    _t("ThirdParty", "Source", "GitHub", (0, 0), (1, 1)),
    _t("AWS", "Build", "CodeBuild", (1, 5), (0, 5), *_CODEBUILD),
    _t("AWS", "Test", "CodeBuild", (1, 5), (0, 5), *_CODEBUILD),
    _t("AWS", "Test", "DeviceFarm", (1, 1), (0, 0)),
    _t("AWS", "Approval", "Manual", (0, 0), (0, 0)),
    _t("AWS", "Deploy", "S3", (1, 1), (0, 0)),
    _t("AWS", "Deploy", "CloudFormation", (0, 10), (0, 1)),
    _t("AWS", "Deploy", "CodeDeploy", (1, 1), (0, 0)),
    _t("AWS", "Deploy", "ElasticBeanstalk", (1, 1), (0, 0)),
    _t("AWS", "Deploy", "OpsWorks", (1, 1), (0, 0)),
    _t("AWS", "Deploy", "ECS", (1, 1), (0, 0)),
    _t("AWS", "Deploy", "ServiceCatalog", (1, 1), (0, 0)),
    _t("ThirdParty", "Deploy", "AlexaSkillsKit", (1, 2), (0, 0)),
    _t("AWS", "Invoke", "Lambda", (0, 5), (0, 5)),
    _t("Custom", "Build", "Jenkins", (0, 5), (0, 5)),
    _t("Custom", "Test", "Jenkins", (0, 5), (0, 5)),
    _t("Custom", "Source", "coursekit-Git", (0, 0), (1, 1), ("RepositoryPath",), ("BranchName",), ours=True),
    _t("Custom", "Deploy", "coursekit-Container", (1, 1), (0, 0), (),
       ("ContainerName", "ContainerPort", "Dockerfile", "HealthCheckPath"), ours=True),
    _t("Custom", "Deploy", "coursekit-Swarm", (1, 1), (0, 0), ("ServiceName",),
       ("Repository", "Replicas", "ContainerPort", "Dockerfile", "HealthCheckPath"), ours=True),
)
_TYPES = {(t.owner, t.category, t.provider): t for t in ACTION_TYPES}


def _close(word: str, options) -> str:
    near = difflib.get_close_matches(word, list(options), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


class Checker:
    """Checks one definition (a dict); :meth:`check` returns it parsed or raises PipelineError."""

    def __init__(self, data: dict):
        self.data, self.problems, self.warnings = data, [], []

    def bad(self, rule: str, where: str, message: str, fix: str = "") -> None:
        self.problems.append((rule, where, message, fix))

    def keys(self, mapping: dict, known: tuple, where: str) -> None:
        for k in mapping:
            if k not in known:
                self.bad("unknown-key", where, f"{k!r} is not a key CodePipeline knows here{_close(str(k), known)}",
                         f"the keys here are: {', '.join(known)}")
            elif k in _NOT_ACTED_ON:
                self.warnings.append(f"{where or 'pipeline'}: {k} is kept but not acted on ({_NOT_ACTED_ON[k]})")

    def name(self, value: Any, where: str, what: str, pattern=NAME, allowed="letters, digits and . @ - _") -> str:
        if not isinstance(value, str) or not pattern.match(value):
            self.bad("bad-name", where, f"{what} {value!r} is not a valid name",
                     f"names are 1 to 100 characters: {allowed}")
        return str(value)

    def check(self) -> PipelineDef:
        d = self.data
        self.keys(d, _PIPELINE_KEYS, "")
        name = self.name(d.get("name"), "", "the pipeline's name")
        if "roleArn" in d and not (isinstance(d["roleArn"], str) and ROLE_ARN.match(d["roleArn"])):
            self.bad("bad-role", "", f"roleArn {d['roleArn']!r} is not an IAM role ARN",
                     "write arn:aws:iam::123456789012:role/NAME, or leave roleArn out")
        if "artifactStores" in d:
            self.bad("cross-region", "", "artifactStores (cross-region actions) is not supported here",
                     "use one artifactStore: {type: S3, location: BUCKET}")
        store = d.get("artifactStore")
        if store is not None and not (isinstance(store, dict) and store.get("type") == "S3"
                                      and isinstance(store.get("location"), str) and BUCKET.match(store["location"])):
            self.bad("bad-artifact-store", "", f"artifactStore must be {{type: S3, location: BUCKET}}, not {store!r}",
                     "name an S3 bucket (3-63 letters, digits, - and .), or leave artifactStore out")
        stages = d.get("stages")
        if not isinstance(stages, list):
            self.bad("no-stages", "", "the pipeline has no list of stages",
                     "add stages: a list of {name: ..., actions: [...]}")
            stages = []
        elif len(stages) < 2:
            self.bad("too-few-stages", "", f"a pipeline needs at least two stages, this one has {len(stages)}",
                     "add a stage after the source stage (a Build, Test or Deploy stage)")
        parsed = [self.stage(s, i) for i, s in enumerate(stages)]
        parsed = [s for s in parsed if s is not None]
        self.stage_rules(parsed)
        self.artifact_rules(parsed)
        if self.problems:
            raise PipelineError(self.problems)
        return PipelineDef(name, parsed, d, self.warnings)

    def stage(self, s: Any, i: int) -> StageDef | None:
        if not isinstance(s, dict):
            self.bad("bad-stage", f"stage #{i + 1}", f"a stage is a mapping with name and actions, not {s!r}",
                     "write - name: Build\\n  actions: [...]")
            return None
        where = f"stage {s.get('name', f'#{i + 1}')!r}"
        self.keys(s, _STAGE_KEYS, where)
        name = self.name(s.get("name"), where, "the stage's name")
        actions = s.get("actions")
        if not isinstance(actions, list) or not actions:
            self.bad("empty-stage", where, "a stage needs at least one action", "add an action to the stage")
            actions = []
        parsed = [self.action(a, name, j) for j, a in enumerate(actions)]
        return StageDef(name, [a for a in parsed if a is not None])

    def action(self, a: Any, stage: str, j: int) -> ActionDef | None:
        where = f"stage {stage!r}, action #{j + 1}"
        if not isinstance(a, dict):
            self.bad("bad-action", where, f"an action is a mapping (name, actionTypeId, ...), not {a!r}")
            return None
        where = f"stage {stage!r}, action {a.get('name', f'#{j + 1}')!r}"
        self.keys(a, _ACTION_KEYS, where)
        name = self.name(a.get("name"), where, "the action's name")
        tid = a.get("actionTypeId")
        if not isinstance(tid, dict):
            self.bad("no-action-type", where, "the action has no actionTypeId",
                     "add actionTypeId: {category: Build, owner: AWS, provider: CodeBuild, version: '1'}")
            tid = {}
        self.keys(tid, ("category", "owner", "provider", "version"), where + ", actionTypeId")
        category, owner, provider, version = (tid.get(k) for k in ("category", "owner", "provider", "version"))
        if category not in CATEGORIES:
            self.bad("bad-category", where, f"category {category!r} is not one of {', '.join(CATEGORIES)}"
                     + _close(str(category), CATEGORIES), "categories are spelled with a capital letter")
        if owner not in OWNERS:
            self.bad("bad-owner", where, f"owner {owner!r} is not AWS, ThirdParty or Custom"
                     + _close(str(owner), OWNERS))
        if not isinstance(provider, str) or not PROVIDER.match(provider):
            self.bad("bad-provider", where, f"provider {provider!r} is not a provider name",
                     "e.g. S3, CodeBuild, coursekit-Container")
        if not isinstance(version, str):
            self.bad("version-not-text", where, f"version must be text, not {version!r}",
                     "quote it: version: '1' (in YAML an unquoted 1 is a number)")
        elif version != "1":
            self.bad("bad-version", where, f"version {version!r}: the only valid version is '1'", "write version: '1'")
        run_order = a.get("runOrder", 1)
        if isinstance(run_order, bool) or not isinstance(run_order, int) or not 1 <= run_order <= 999:
            self.bad("bad-run-order", where, f"runOrder {run_order!r} is not a whole number from 1 to 999",
                     "actions with the same runOrder run in parallel; a higher one runs after them")
            run_order = 1
        config = a.get("configuration") or {}
        if not isinstance(config, dict):
            self.bad("bad-configuration", where, "configuration must be a mapping of keys to text")
            config = {}
        for k, v in config.items():
            if not isinstance(v, str) or not v or len(v) > 1000 or len(str(k)) > 50:
                self.bad("configuration-not-text", where, f"configuration {k}: {v!r} must be text (1-1000 "
                         "characters)", f"quote it: {k}: '{v}'")
        inputs = self.artifacts(a.get("inputArtifacts"), where, "inputArtifacts")
        outputs = self.artifacts(a.get("outputArtifacts"), where, "outputArtifacts")
        act = ActionDef(name, stage, str(category), str(owner), str(provider), str(version), run_order,
                        {str(k): str(v) for k, v in config.items()}, inputs, outputs)
        if category in CATEGORIES and owner in OWNERS and isinstance(provider, str):
            act.type = self.action_type(act, where)
        return act

    def artifacts(self, value: Any, where: str, key: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad("bad-artifacts", where, f"{key} must be a list of {{name: ...}}, not {value!r}")
            return []
        names = []
        for item in value:
            if isinstance(item, str):
                self.bad("bad-artifacts", where, f"{key} lists {item!r} as plain text",
                         f"write each artifact as a mapping: {key}: [{{name: {item}}}]")
            elif not isinstance(item, dict) or set(item) - {"name", "files"}:
                self.bad("bad-artifacts", where, f"{key} has {item!r}: each artifact is {{name: ...}}")
            else:
                names.append(self.name(item.get("name"), where, "artifact", ARTIFACT, "letters, digits, _ and -"))
        return names

    def action_type(self, act: ActionDef, where: str) -> ActionType | None:
        t = _TYPES.get((act.owner, act.category, act.provider))
        if t is None:
            elsewhere = [x for x in ACTION_TYPES if x.provider == act.provider]
            same = sorted({x.provider for x in ACTION_TYPES if x.category == act.category and x.owner == act.owner})
            if elsewhere:
                found = " and ".join(f"{x.category} actions (owner {x.owner})" for x in elsewhere)
                msg = f"{act.provider} is a provider of {found}, not of {act.category} actions of owner {act.owner}"
            else:
                near = [x for x in ACTION_TYPES if x.category == act.category and (
                    act.provider.lower() in x.provider.lower() or difflib.SequenceMatcher(
                        None, act.provider.lower(), x.provider.lower()).ratio() > 0.75)]
                hint = " (did you mean " + " or ".join(f"owner {x.owner}, provider {x.provider!r}" for x in near) \
                    + "?)" if near else ""
                msg = f"there is no {act.category} provider {act.provider!r} of owner {act.owner}{hint}"
                if act.owner == "Custom":
                    msg += ("; a custom action type must be created first (coursekit defines coursekit-Git, "
                            "coursekit-Container and coursekit-Swarm)")
            self.bad("unknown-provider", where, msg,
                     f"{act.owner} {act.category} providers: {', '.join(same) or 'none'}")
            return None
        for kind, names, (lo, hi) in (("input", act.inputs, t.inputs), ("output", act.outputs, t.outputs)):
            if not lo <= len(names) <= hi:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}"
                self.bad("artifact-count", where, f"{t.provider} ({act.category}) takes {want} {kind} artifact"
                         f"{'' if hi == 1 else 's'}, this action has {len(names)}",
                         f"{'add' if len(names) < lo else 'remove'} {kind}Artifacts: [{{name: ...}}]")
        if t.allowed is not None:
            for k in t.required:
                if k not in act.configuration:
                    self.bad("missing-configuration", where, f"{t.provider} needs configuration {k}",
                             f"add configuration: {{{k}: ...}}")
            for k in act.configuration:
                if k not in t.allowed:
                    self.bad("unknown-configuration", where, f"{t.provider} has no configuration {k!r}"
                             + _close(k, t.allowed), f"its keys are {', '.join(t.allowed)}")
        return t

    def stage_rules(self, stages: list[StageDef]) -> None:
        seen: set[str] = set()
        for s in stages:
            if s.name in seen:
                self.bad("duplicate-stage", f"stage {s.name!r}", "two stages have this name",
                         "stage names must be unique in a pipeline")
            seen.add(s.name)
            names = [a.name for a in s.actions]
            for n in sorted({n for n in names if names.count(n) > 1}):
                self.bad("duplicate-action", f"stage {s.name!r}", f"two actions are named {n!r}",
                         "action names must be unique within a stage")
        if stages:
            first = stages[0]
            if not any(a.category == "Source" for a in first.actions):
                self.bad("first-stage-not-source", f"stage {first.name!r}", "the first stage must hold at least one "
                         "source action", "start the pipeline with a stage of Source actions (S3, coursekit-Git...)")
            for a in first.actions:
                if a.category != "Source":
                    self.bad("non-source-in-first-stage", a.where, f"the first stage may hold source actions only, "
                             f"not a {a.category} action", "move it to a later stage")
        for s in stages[1:]:
            for a in s.actions:
                if a.category == "Source":
                    self.bad("source-not-first", a.where, "only the first stage may hold source actions",
                             "move this source action to the first stage")

    def artifact_rules(self, stages: list[StageDef]) -> None:
        producer: dict[str, tuple[int, ActionDef]] = {}
        for i, s in enumerate(stages):
            for a in s.actions:
                for out in a.outputs:
                    if out in producer:
                        other = producer[out][1]
                        self.bad("duplicate-output", a.where, f"output artifact {out!r} is also produced by "
                                 f"{other.where}", "output artifact names must be unique in a pipeline")
                    else:
                        producer[out] = (i, a)
        for i, s in enumerate(stages):
            for a in s.actions:
                for inp in a.inputs:
                    if inp not in producer:
                        self.bad("dangling-artifact", a.where, f"input artifact {inp!r} is not produced by any "
                                 f"action{_close(inp, producer)}", "name an artifact that an earlier action lists "
                                 "in its outputArtifacts (names must match exactly)")
                        continue
                    j, p = producer[inp]
                    if j > i or (j == i and p.run_order >= a.run_order):
                        when = "later" if j > i or p.run_order > a.run_order else "at the same time (same runOrder)"
                        self.bad("input-not-ready", a.where, f"input artifact {inp!r} is produced by {p.where}, "
                                 f"which runs {when}", "an input must come from an action in an earlier stage, or "
                                 "with a lower runOrder in the same stage")

