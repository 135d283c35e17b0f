"""A CodePipeline-shaped pipeline that really runs on this machine (lesson ``08-ci-cd``).

:class:`Pipeline` (:mod:`.runner`) takes a definition in CodePipeline's own shape, checked by
:mod:`.definition` against CodePipeline's rules (:mod:`.rules`, on the data model of
:mod:`.model`), runs it (:mod:`.execution`) through its action providers (:mod:`.providers`: the
sources and builds of :mod:`.actions`, the deploys of :mod:`.deploy`) and draws it (:mod:`.view`).
"""
from __future__ import annotations

from .runner import (ACTION_TYPES, FAILED, IDLE, IN_PROGRESS, PIPELINE_LABEL, STOPPED, SUCCEEDED, ActionFailed,
                     Execution, Pipeline, PipelineDef, PipelineError, PipelineView, Project, load, timing_chart)

__all__ = ["ACTION_TYPES", "FAILED", "IDLE", "IN_PROGRESS", "PIPELINE_LABEL", "STOPPED", "SUCCEEDED",
           "ActionFailed", "Execution", "Pipeline", "PipelineDef", "PipelineError", "PipelineView", "Project",
           "load", "timing_chart"]
