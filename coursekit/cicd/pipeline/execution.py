"""One run of a pipeline: stages in order, actions by runOrder, artifacts through S3, retries.

An :class:`Execution` is what ``Pipeline.run()`` returns, and records what CodePipeline's
``get-pipeline-state`` and ``list-action-executions`` show: the execution's status
(``InProgress``, ``Succeeded``, ``Failed``), each stage's, and each action's attempts with their
status, start, end, log, error details and a summary (build id, test counts, deployed URL...).

How it runs, as CodePipeline does:

* stages run one after the other; in a stage, actions run by ``runOrder``, lowest first;
  actions with the same ``runOrder`` run in parallel (threads here);
* every output artifact is a zip stored in the pipeline's artifact store, the sandbox's S3
  bucket, under ``<pipeline name, first 20 characters>/<artifact name, first 10>/<7 random
  characters>`` (a folder named after the pipeline, as CodePipeline makes); every input is
  downloaded from there;
* a failed action fails its stage once the actions running beside it end; no later
  ``runOrder`` of that stage and no later stage runs, and the execution is ``Failed``;
* :meth:`Execution.retry` is CodePipeline's "Retry failed actions": the failed stage runs
  again, with the *same* input artifacts (a fix to the code needs a new ``run()``, as a new
  commit starts a new execution), skipping the actions that succeeded (``mode="ALL_ACTIONS"``
  re-runs them all), then the pipeline carries on. Only the latest execution can be retried.

Execution ids come from the sandbox's CodePipeline (``start_pipeline_execution``), whose own
record says ``Succeeded`` at once: moto runs nothing. Lesson: ``08-ci-cd``.
"""
from __future__ import annotations

import queue
import secrets
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import actions as pipelineactions, providers
from ...errors import CICDError, CoursekitError
from .model import ActionDef, StageDef
from ...ui.notebook import in_notebook
from ...ui.progress import Progress

IDLE, IN_PROGRESS, SUCCEEDED, FAILED, STOPPED = "Idle", "InProgress", "Succeeded", "Failed", "Stopped"


@dataclass
class Attempt:
    """One run of an action (a retry adds another). Times are ``time.time()`` seconds."""

    status: str
    start: float
    end: float | None = None
    log: list[str] = field(default_factory=list)
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end or time.time()) - self.start


@dataclass
class ActionRun:
    definition: ActionDef
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def status(self) -> str:
        return self.last.status if self.last else IDLE

    @property
    def error(self) -> str:
        return self.last.error if self.last else ""

    @property
    def log(self) -> str:
        return "\n".join(self.last.log) if self.last else ""

    @property
    def summary(self) -> dict[str, Any]:
        return self.last.summary if self.last else {}

    @property
    def start(self) -> float | None:
        return self.last.start if self.last else None

    @property
    def end(self) -> float | None:
        return self.last.end if self.last else None


@dataclass
class StageRun:
    definition: StageDef
    actions: dict[str, ActionRun]
    status: str = IDLE

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def start(self) -> float | None:
        starts = [t.start for a in self.actions.values() for t in a.attempts]
        return min(starts) if starts else None

    @property
    def end(self) -> float | None:
        ends = [t.end for a in self.actions.values() for t in a.attempts]
        return max(ends) if ends and None not in ends else None

    @property
    def seconds(self) -> float:
        """From the first action's start to the last one's end (retries included)."""
        return ((self.end or time.time()) - self.start) if self.start else 0.0

    @property
    def log(self) -> str:
        """Every action's log, attempt by attempt."""
        return "\n".join(f"[{a.name}, attempt {n}] {line}" for a in self.actions.values()
                         for n, t in enumerate(a.attempts, 1) for line in t.log)


@dataclass
class StoredArtifact:
    name: str
    bucket: str
    key: str
    revision: str
    size: int
    producer: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class Execution:
    """One execution of a pipeline (see the module's docstring)."""

    def __init__(self, pipeline: Any, execution_id: str):
        self.pipeline, self.id = pipeline, execution_id
        self.stages = {s.name: StageRun(s, {a.name: ActionRun(a) for a in s.actions})
                       for s in pipeline.definition.stages}
        self.status, self.start, self.end = IN_PROGRESS, time.time(), None
        self.artifacts: dict[str, StoredArtifact] = {}
        self.retries = 0
        self.view = None  # a PipelineView following this execution, when shown
        self._events: queue.Queue = queue.Queue()
        self._progress: Progress = None
        self._main = threading.current_thread()

    # ------------------------------------------------------------------ reading it
    def action(self, stage: str, action: str) -> ActionRun:
        return self.stages[stage].actions[action]

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def failed_stage(self) -> StageRun | None:
        return next((s for s in self.stages.values() if s.status == FAILED), None)

    @property
    def seconds(self) -> float:
        return (self.end or time.time()) - self.start

    def __repr__(self) -> str:
        return f"<Execution {self.id[:8]} of {self.pipeline.name}: {self.status}>"

    def __str__(self) -> str:
        from .view import execution_text

        return execution_text(self)

    def _repr_html_(self) -> str:
        from .view import execution_html

        return execution_html(self)

    def timing_chart(self, **kw):
        from .view import timing_chart

        return timing_chart(self, **kw)

    # ------------------------------------------------------------------ running it
    def show(self):
        """Draw this execution here (in a notebook), redrawn while it runs; an earlier picture stays as it was."""
        from .view import PipelineView

        return PipelineView(self.pipeline).show().follow(self)

    def retry(self, mode: str = "FAILED_ACTIONS", *, progress: Progress = print, show: bool = True) -> Execution:
        """Run the failed stage again (same artifacts) and carry on; see the module docstring.

        ``show``: in a notebook, draw the execution again in this cell and redraw it as it runs.
        """
        if mode not in ("FAILED_ACTIONS", "ALL_ACTIONS"):
            raise CICDError(f"retry mode {mode!r} is not FAILED_ACTIONS or ALL_ACTIONS",
                            "FAILED_ACTIONS re-runs the failed actions only; ALL_ACTIONS the whole stage")
        stage = self.failed_stage
        if self.status != FAILED or stage is None:
            raise CICDError(f"only a failed execution can be retried; this one is {self.status}",
                            "start a new execution with pipeline.run()")
        if self.pipeline.latest is not self:
            raise CICDError("a newer execution of this pipeline exists: CodePipeline retries only the latest",
                            "retry the latest one (pipeline.latest.retry()), or run the pipeline again")
        self.retries += 1
        self.status, self.end = IN_PROGRESS, None
        if show and in_notebook():
            self.show()
        return self._go(list(self.stages).index(stage.name), mode, progress)

    def _go(self, first: int, retry_mode: str | None, progress: Progress) -> Execution:
        self._progress, self._main = progress, threading.current_thread()
        self._say(f"Execution {self.id}" + (f": retrying stage {list(self.stages)[first]} ({retry_mode})"
                                            if retry_mode else f" of {self.pipeline.name} started"))
        for warning in self.pipeline.definition.warnings if not retry_mode else ():
            self._say(f"Warning: {warning}")
        try:
            for i, stage in enumerate(list(self.stages.values())[first:]):
                if not self._run_stage(stage, retry_mode if i == 0 else None):
                    self.status = FAILED
                    break
            else:
                self.status = SUCCEEDED
        except BaseException:
            self.status = STOPPED
            raise
        finally:
            self.end = time.time()
            self._changed()
            self._say(f"Execution {self.id[:8]}: {self.status} in {self.seconds:.1f} s")
        return self

    def _run_stage(self, stage: StageRun, retry_mode: str | None) -> bool:
        stage.status = IN_PROGRESS
        self._say(f"Stage {stage.name}: InProgress")
        for group in stage.definition.groups():
            runs = [stage.actions[a.name] for a in group]
            if retry_mode == "FAILED_ACTIONS":
                runs = [r for r in runs if r.status != SUCCEEDED]
            if len(runs) == 1:
                self._run_action(stage, runs[0])
            elif runs:
                pool = ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="ck-action")
                try:
                    futures = [pool.submit(self._run_action, stage, r) for r in runs]
                    while not all(f.done() for f in futures):
                        self._drain(0.2)
                    for f in futures:
                        f.result()
                finally:  # on an interrupt, do not wait here: each build cleans up after itself
                    pool.shutdown(wait=False)
                self._drain(0)
            if any(stage.actions[a.name].status == FAILED for a in group):
                stage.status = FAILED
                break
        else:
            stage.status = SUCCEEDED
        self._changed()
        self._say(f"Stage {stage.name}: {stage.status}")
        return stage.status == SUCCEEDED

    def _run_action(self, stage: StageRun, run: ActionRun) -> None:
        a = run.definition
        attempt = Attempt(IN_PROGRESS, time.time())
        run.attempts.append(attempt)
        self._emit("changed", None)
        prefix = f"[{stage.name}/{a.name}]"

        def log(line: str) -> None:
            attempt.log.append(line)
            self._emit("say", f"{prefix} {line}")
        ctx = pipelineactions.Context(self.pipeline, self.id, a, {}, log)
        try:
            ctx.inputs = {name: self._download(name) for name in a.inputs}
            providers.run(ctx)
            for name, (data, revision) in ctx.outputs.items():
                self.artifacts[name] = stored = self._store(name, data, revision, a.where)
                log(f"Stored output artifact {name} as {stored.url} ({stored.size:,} bytes)")
            attempt.status = SUCCEEDED
        except pipelineactions.ActionFailed as exc:
            attempt.status, attempt.error = FAILED, str(exc)
        except CoursekitError as exc:
            attempt.status, attempt.error = FAILED, exc.problem + (f" (what to do: {exc.fix})" if exc.fix else "")
        except Exception as exc:  # a bug of ours or an engine hiccup: recorded, not a traceback
            attempt.status, attempt.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            attempt.end = time.time()
            attempt.summary = ctx.summary
            if attempt.status == IN_PROGRESS:  # interrupted
                attempt.status, attempt.error = STOPPED, "stopped"
            if attempt.error:
                log(f"Error: {attempt.error}")
            self._emit("say", f"{prefix} {attempt.status} in {attempt.seconds:.1f} s")
            self._emit("changed", None)

    # ------------------------------------------------------------------ artifacts
    def _store(self, name: str, data: bytes, revision: str, producer: str) -> StoredArtifact:
        bucket = self.pipeline.bucket
        rand = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(7))
        key = f"{self.pipeline.name[:20]}/{name[:10]}/{rand}"
        self.pipeline.sandbox.client("s3").put_object(Bucket=bucket, Key=key, Body=data,
                                                      Metadata={"revision": revision[:200]})
        return StoredArtifact(name, bucket, key, revision, len(data), producer)

    def _download(self, name: str) -> bytes:
        art = self.artifacts.get(name)
        if art is None:
            raise CICDError(f"input artifact {name!r} was not produced in this execution")
        return self.pipeline.sandbox.client("s3").get_object(Bucket=art.bucket, Key=art.key)["Body"].read()

    # ------------------------------------------------------------------ progress, from any thread
    def _emit(self, kind: str, payload: Any) -> None:
        if threading.current_thread() is self._main:
            self._handle(kind, payload)
        else:
            self._events.put((kind, payload))

    def _drain(self, wait: float) -> None:
        try:
            item = self._events.get(timeout=wait) if wait else self._events.get_nowait()
            while True:
                self._handle(*item)
                item = self._events.get_nowait()
        except queue.Empty:
            pass

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "say":
            self._say(payload)
        else:
            self._changed()

    def _say(self, line: str) -> None:
        if self._progress:
            self._progress(line)
        if self.view is not None:
            self.view.refresh(force=False)

    def _changed(self) -> None:
        if self.view is not None:
            self.view.refresh(force=True)
