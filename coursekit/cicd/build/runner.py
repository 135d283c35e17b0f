"""Run an AWS CodeBuild ``buildspec.yml`` for real, in a container, with CodeBuild's rules.

``result = coursekit.cicd.build.runner.run("myproject/", sandbox=sb)`` copies the folder into a
fresh container of the course's build image, runs the buildspec's phases and returns a
:class:`~coursekit.cicd.build.result.BuildResult` (phases with status, duration, exit code and log;
exported variables; the artifact zip; test reports). The log streams to ``progress`` in
CodeBuild's words (``Entering phase BUILD``, ``Running command ...``, ``Phase complete``).

What follows CodeBuild's documentation (build-spec reference, "Build phase transitions",
"Environment variables in build environments", test reports):

* phases run in order ``INSTALL``, ``PRE_BUILD``, ``BUILD``, ``POST_BUILD``, all commands of a
  build in one shell (:mod:`coursekit.cicd.build.shell`): ``cd`` and ``export`` carry over;
* a failing command ends its phase's ``commands``; the phase's ``finally`` commands still run;
  the phase fails if any command failed;
* a failed ``INSTALL`` or ``PRE_BUILD`` skips the later phases and the artifact upload (the
  reference's note: none of the later phases' commands run); a failed ``BUILD`` still runs
  ``POST_BUILD``, where ``CODEBUILD_BUILD_SUCCEEDING`` is then ``0`` ("0 if the build is
  failing"), and the upload is still attempted ("always attempted, even if the BUILD phase
  fails"); ``on-failure: CONTINUE`` goes on to the next phase; the build succeeds only when
  every phase does;
* variables: start-build overrides (``env_overrides``) beat project variables
  (``project_env``), which beat the buildspec's ``env.variables``; the values are literal
  (``$PATH`` is not expanded); ``CODEBUILD_BUILD_ARN``, ``_ID``, ``_IMAGE``, ``_NUMBER``,
  ``_SUCCEEDING``, ``CODEBUILD_INITIATOR``, ``_LOG_PATH``, ``_SRC_DIR``, ``_START_TIME``,
  ``AWS_REGION``, ``AWS_DEFAULT_REGION`` and ``HOME=/root`` are set; ``env.exported-variables``
  are read when ``POST_BUILD`` has ended;
* artifacts and JUnit reports as described in :mod:`coursekit.cicd.build.artifacts`; a build that runs
  past ``timeout`` is stopped: the running phase is ``TIMED_OUT``, so is the build.

Where this runner differs from CodeBuild (besides :mod:`coursekit.cicd.build.spec`'s list):

* Network: the build container sits on an internal Docker network with no way out except the
  relay of :mod:`coursekit.aws.relay` to the sandbox's moto server (``AWS_ENDPOINT_URL=
  http://aws:4566``, fake keys ``testing``); no name but ``aws`` resolves. No internet, so
  ``pip install`` of something new fails at once: the course's build image,
  ``coursekit/build:1``, has pytest, boto3 and the AWS CLI already. Without a server-mode
  sandbox (or with ``sandbox=False``) the container has no network at all and
  ``AWS_ENDPOINT_URL`` is not set.
* Build ids come from moto's CodeBuild (``create_project`` + ``start_build``), so moto keeps a
  record of each build. moto's CodeBuild runs nothing: its record says ``SUCCEEDED`` whatever
  happened here, with a random ``buildNumber``; ``CODEBUILD_BUILD_NUMBER`` is instead the
  count of the project's builds in that sandbox (or in this process, without a sandbox).
* Phases are timed from the first to the last command; ``SUBMITTED``, ``QUEUED`` and
  ``FINALIZING`` are not listed, ``PROVISIONING`` is starting the container and
  ``DOWNLOAD_SOURCE`` is copying the folder in. Skipped phases are listed as ``SKIPPED``.
* A command that ends the shell (``exit``, or ``set -e`` then a failure) fails; the build goes
  on in a new shell with the saved folder and exported variables (plain shell variables and
  functions are lost). The default shell is Debian's ``/bin/sh`` (dash), as ``sh`` is on
  CodeBuild's Ubuntu images; ``env.shell: bash`` picks bash.
* The artifact is a zip uploaded from this machine to ``artifact_bucket`` (default
  ``coursekit-artifacts``, created if missing; a bucket you name must exist) under
  ``s3-prefix/`` + ``artifacts.name`` (shell-expanded in the build's shell when it ends), or
  ``<project>.zip`` without a name. CodeBuild uses the buildspec's ``name`` only when the
  project allows it (``overrideArtifactName``); here it always does. Without a sandbox the
  zip is kept in ``result.artifact.data`` only.
* Reports are read whenever the build was not stopped by its timeout; only JUnit XML; counts
  are not sent to a CodeBuild report group (moto has none).
* ``on-failure: ABORT`` ("abort the build") skips the later phases *and* the upload; the
  reference does not say whether CodeBuild still uploads.
* Variables: ``CODEBUILD_RESOLVED_SOURCE_VERSION``, ``_SOURCE_VERSION``, ``_SOURCE_REPO_URL``,
  ``_KMS_KEY_ID`` and the ``CODEBUILD_WEBHOOK_...`` ones are not set (no repository, webhook or
  KMS key here); ``AWS_EC2_METADATA_DISABLED=true`` is. ``CODEBUILD_...`` names may not be set
  by the buildspec, the project or the overrides (CodeBuild only asks you not to). An exported
  variable that is unset when the build ends is left out of ``result.exported``.
* ``timeout`` is in seconds (CodeBuild: minutes, 5 at least). Timings vary with the machine.

Lesson: ``08-ci-cd``. Everything it starts (container, relay, network) is labelled by
:mod:`coursekit.docker.engine` and removed when the build ends, also on errors and interrupts.
"""
from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Union

from . import artifacts, env as buildenv, shell as buildshell, spec as buildspec
from ...docker import engine
from .result import FAILED, SKIPPED, SUCCEEDED, TIMED_OUT, BuildResult, CommandResult, PhaseResult
from .shell import CK_DIR, BuildShell, BuildTimeout
from ...docker.labels import BUILD_LABEL, ROLE_LABEL
from ...errors import CICDError
from ...ui.progress import Progress

DEFAULT_IMAGE = "coursekit/build:1"
DEFAULT_BUCKET = "coursekit-artifacts"
MAX_SOURCE_BYTES = 500_000_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def run(source_dir: Union[str, Path], spec: Union[str, Path, buildspec.Buildspec, None] = None, *,
        image: str = DEFAULT_IMAGE, project: str | None = None, env_overrides: Mapping[str, str] | None = None,
        project_env: Mapping[str, str] | None = None, sandbox: Any = None, artifact_bucket: str | None = None,
        timeout: float = 600, progress: Progress = print, lesson: str | None = None) -> BuildResult:
    """Run the buildspec of ``source_dir`` (or ``spec``: a path, YAML text or Buildspec) in a container.

    ``sandbox``: the :func:`coursekit.aws.sandbox` to use (default: the active one, if any;
    False: none); with ``server=True`` the build's commands reach it. ``project``: the CodeBuild project
    name (default: the folder's name). ``progress``: called with each log line (None: quiet).
    Returns a :class:`~coursekit.cicd.build.result.BuildResult`; a build that fails is a result, not
    an exception. Raises :class:`~coursekit.cicd.build.spec.BuildspecError` for a malformed buildspec,
    :class:`~coursekit.errors.CICDError` for bad arguments and
    :class:`~coursekit.errors.EngineUnavailable` for a missing engine.
    """
    src = Path(source_dir).expanduser()
    if not src.is_dir():
        raise CICDError(f"the source folder {src} does not exist (or is not a folder)",
                        "pass the folder that holds your code and its buildspec.yml")
    if isinstance(spec, (str, Path)) and str(spec).endswith((".yml", ".yaml")) and not Path(spec).is_absolute() \
            and (src / spec).is_file():
        spec = src / spec  # as CodeBuild's buildspec override: a relative path names a file in the source
    spec = buildspec.load(spec if spec is not None else src)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise CICDError(f"timeout must be a positive number of seconds, not {timeout!r}", "e.g. timeout=120")
    if project is None:  # the folder's name, made a valid project name
        project = re.sub(r"[^A-Za-z0-9_-]+", "-", src.resolve().name).strip("-")[:200]
        project = project if re.match(r"[A-Za-z]", project) else f"project-{project}".rstrip("-")
    if not re.match(r"[A-Za-z][A-Za-z0-9_-]{1,254}\Z", project):
        raise CICDError(f"{project!r} is not a valid CodeBuild project name",
                        "start with a letter; use letters, digits, - and _ (2 to 255 characters)")
    for what, given in (("project_env", project_env), ("env_overrides", env_overrides)):
        for name in (given or {}):
            if not isinstance(name, str) or not _NAME.match(name) or name.startswith("CODEBUILD_"):
                raise CICDError(f"{what} has {name!r}: not a variable name you may set",
                                "use letters, digits and _; names starting with CODEBUILD_ are reserved")
    if sandbox is None:
        from ... import aws

        sandbox = aws.active()
    elif sandbox is False:
        sandbox = None
    return _Build(src, spec, image, project, dict(project_env or {}), dict(env_overrides or {}), sandbox,
                  artifact_bucket, float(timeout), progress, lesson).run()


class _Build:
    """One build's state, from provisioning to clean-up."""

    def __init__(self, src: Path, spec: buildspec.Buildspec, image: str, project: str, project_env: dict,
                 overrides: dict, sandbox: Any, bucket: str | None, timeout: float, progress, lesson):
        self.src, self.spec, self.image, self.project, self.sandbox = src, spec, image, project, sandbox
        self.project_env, self.overrides, self.bucket, self.timeout = project_env, overrides, bucket, timeout
        self.progress, self.lesson = progress, lesson
        self.token = uuid.uuid4().hex
        self.src_dir = f"/codebuild/output/src{random.randint(10**8, 10**9 - 1)}/src"
        self.log_lines: list[str] = []
        self.phase_log: list[str] = []
        self.phases: list[PhaseResult] = []
        self.container = self.network = self.relay = self.shell = None
        self.scripts: dict[tuple, str] = {}

    # ------------------------------------------------------------------ logging
    def say(self, text: str, container: bool = True) -> None:
        line = f"[Container] {time.strftime('%H:%M:%S')} {text}" if container else text
        self.log_lines.append(line)
        self.phase_log.append(line)
        if self.progress:
            self.progress(line)

    def _phase(self, name: str, status: str, t0: float | None = None, **kw) -> PhaseResult:
        p = PhaseResult(name, status, time.monotonic() - t0 if t0 else 0.0, log="\n".join(self.phase_log), **kw)
        self.phase_log = []
        self.phases.append(p)
        return p

    # ------------------------------------------------------------------ the build
    def run(self) -> BuildResult:
        self._ensure_images()  # building a missing image is not the build's time
        t_start = time.monotonic()
        build_id, arn, number = buildenv.register(
            self.sandbox, self.project, source=f"file://{self.src.resolve()}", buildspec_text=self.spec.text,
            image=self.image, bucket=(self.bucket or DEFAULT_BUCKET) if self.spec.artifacts else None,
            project_env=self.project_env)
        env = buildenv.environment(build_id=build_id, arn=arn, number=number, image=self.image, src_dir=self.src_dir,
                                   sandbox=self.sandbox, relay=self._relay_wanted(),
                                   layers=(self.spec.variables, self.project_env, self.overrides))
        self.deadline = t_start + self.timeout
        warnings = list(self.spec.warnings)
        try:
            for w in warnings:
                self.say(f"Warning: {w}")
            status, exported, artifact, reports = self._steps(env, warnings)
        finally:
            self._cleanup()
        self.say(f"Build {status} in {time.monotonic() - t_start:.1f} s")
        return BuildResult(build_id, arn, number, self.project, status, self.image, self.phases,
                           "\n".join(self.log_lines), exported, artifact, reports, env, warnings,
                           time.monotonic() - t_start)

    def _steps(self, env: dict, warnings: list[str]):
        """PROVISIONING to UPLOAD_ARTIFACTS; Docker's errors become CoursekitErrors that say what to do."""
        exported, artifact, reports = {}, None, {}
        with engine.explaining(self.image, "running the build"):
            t0 = time.monotonic()
            self._provision(env)
            self._phase("PROVISIONING", SUCCEEDED, t0)
            t0 = time.monotonic()
            files, self.scripts = buildshell.container_files(self.spec, self.token)
            self.container.put_archive("/", buildshell.source_tar(self.src, self.src_dir, files, MAX_SOURCE_BYTES))
            self.say(f"Copied {self.src} to {self.src_dir}")
            self._phase("DOWNLOAD_SOURCE", SUCCEEDED, t0)
            self.shell = BuildShell(self.container, self.spec.shell, self.src_dir, self.token,
                                    on_line=lambda line: self.say(line, container=False))
            self.shell.start()
            status, upload = self._command_phases()
            if status != TIMED_OUT:
                exported, name = self._finish_shell()
                artifact, reports, ok = self._upload(upload, name, warnings)
                if not ok:
                    status = FAILED
            else:
                self._phase("UPLOAD_ARTIFACTS", SKIPPED, message="the build timed out")
        return status, exported, artifact, reports

    def _relay_wanted(self) -> bool:
        return bool(getattr(self.sandbox, "endpoint_url", None) and getattr(self.sandbox, "port", None))

    def _ensure_images(self) -> None:
        from ...aws import relay as awsrelay
        from ...docker import images

        wanted = [self.image] + ([awsrelay.RELAY_IMAGE] if self._relay_wanted() else [])
        catalog = images.catalog()
        images.ensure([w for w in dict.fromkeys(wanted) if w in catalog], progress=self.progress or (lambda _: None))

    def _provision(self, env: dict) -> None:
        from ...aws import relay as awsrelay

        labels = {ROLE_LABEL: "codebuild", BUILD_LABEL: env["CODEBUILD_BUILD_ID"]}
        kw: dict[str, Any] = {"network_mode": "none"}
        if self._relay_wanted():
            self.network = engine.network(f"ck-build-{self.token[:12]}", internal=True, lesson=self.lesson,
                                          labels=labels)
            self.relay = awsrelay.Relay(self.network, ("127.0.0.1", int(self.sandbox.port)), lesson=self.lesson)
            self.relay.start()
            kw = {"network": self.network.name, "extra_hosts": {awsrelay.ALIAS: self.relay.ip}}
            self.say(f"AWS: {env['AWS_ENDPOINT_URL']} (the sandbox's moto server); no other network")
        else:
            self.say("AWS: no server-mode sandbox, so the build has no network at all")
        self.container = engine.create(self.image, ["tail", "-f", "/dev/null"], lesson=self.lesson, init=True,
                                       user="0", environment=env, working_dir=self.src_dir, hostname="codebuild",
                                       labels=labels, **kw)  # commands run as root, as in CodeBuild
        self.container.start()
        if self.network is not None:
            # Names resolve from /etc/hosts only ("aws" is there): a lookup of anything else fails at
            # once instead of waiting for DNS servers the internal network cannot reach.
            self.container.exec_run(["sh", "-c", "echo 'nameserver 127.0.0.1' >/etc/resolv.conf"], user="root")
        self.say(f"Build container {self.container.short_id} from {self.image}")

    # ------------------------------------------------------------------ phases
    def _command_phases(self) -> tuple[str, bool]:
        """Run INSTALL..POST_BUILD by CodeBuild's transition rules; (status so far, upload allowed)."""
        status, skip, upload = SUCCEEDED, "", True
        for name in buildspec.PHASES:
            ptype = name.upper()
            if skip:
                self._phase(ptype, SKIPPED, message=skip)
                continue
            ph = self.spec.phases.get(name)
            t0 = time.monotonic()
            if ph is None:
                self._phase(ptype, SUCCEEDED, message="no commands")
                continue
            self.say(f"Entering phase {ptype}")
            commands: list[CommandResult] = []
            failed: tuple[str, int] | None = None
            try:
                for block, cmds in (("commands", ph.commands), ("finally", ph.finally_)):
                    for i, cmd in enumerate(cmds):
                        self.say(f"Running command {cmd}")
                        t1 = time.monotonic()
                        try:
                            r = self.shell.run(self.scripts[(name, block, i)], self.deadline)
                        except BuildTimeout:
                            commands.append(CommandResult(cmd, None, time.monotonic() - t1, block))
                            raise
                        commands.append(CommandResult(cmd, r.exit_code, r.seconds, block))
                        if r.exit_code:
                            self.say(f"Command did not exit successfully {cmd} exit status {r.exit_code}")
                            failed = failed or (cmd, r.exit_code)
                            break
            except BuildTimeout:
                message = f"BUILD_TIMED_OUT: Build timed out after {self.timeout:g} seconds"
                self.say(f"Phase complete: {ptype} State: TIMED_OUT")
                self._phase(ptype, TIMED_OUT, t0, commands=commands, message=message)
                with contextlib.suppress(Exception):
                    self.container.kill()
                skip, status = "the build timed out", TIMED_OUT
                continue
            if failed is None:
                self.say(f"Phase complete: {ptype} State: SUCCEEDED ({time.monotonic() - t0:.2f} s)")
                self._phase(ptype, SUCCEEDED, t0, exit_code=0, commands=commands)
                continue
            message = f"COMMAND_EXECUTION_ERROR: Error while executing command: {failed[0]}. " \
                      f"Reason: exit status {failed[1]}"
            self.say(f"Phase complete: {ptype} State: FAILED ({time.monotonic() - t0:.2f} s)")
            self.say(f"Phase context status code: {message}")
            self._phase(ptype, FAILED, t0, exit_code=failed[1], commands=commands, message=message)
            if status == SUCCEEDED:
                self._internal("failing.sh")
            status = FAILED
            if ph.on_failure == "ABORT" or (ph.on_failure is None and name in ("install", "pre_build")):
                how = "on-failure: ABORT" if ph.on_failure == "ABORT" else "CodeBuild skips the later phases"
                skip, upload = f"{ptype} failed ({how})", False
        return status, upload

    def _internal(self, script: str) -> None:
        """Source one of the runner's own scripts (a few seconds' grace past the deadline)."""
        try:
            self.shell.run(f"{CK_DIR}/{script}", max(self.deadline, time.monotonic()) + 10)
        except BuildTimeout:
            self.say(f"Warning: the build's shell did not answer (running {script})")

    def _finish_shell(self) -> tuple[dict[str, str], str | None]:
        """Exported variables (as POST_BUILD left them) and the artifact name, evaluated by the build's shell."""
        self._internal("exported.sh")
        if self.spec.artifacts and self.spec.artifacts.name:
            self._internal("name.sh")
        exported, name = buildshell.read_state(self.container, self.spec.exported_variables)
        for k, v in exported.items():
            self.say(f"Exported variable {k}={v}")
        return exported, name

    def _upload(self, allowed: bool, name: str | None, warnings: list[str]):
        """UPLOAD_ARTIFACTS: reports are read; the artifact zip is built and stored. Returns (artifact, reports, ok)."""
        spec, t0, picked, reports = self.spec, time.monotonic(), None, {}
        if spec.reports or (spec.artifacts and allowed):
            stream, _ = self.container.get_archive(self.src_dir)
            picked = artifacts.collect(stream, spec.artifacts if allowed else None, spec.reports)
            for w in picked.warnings:
                self.say(f"Warning: {w}")
            warnings += picked.warnings
        for group, files in (picked.report_files.items() if picked else ()):
            reports[group] = rep = artifacts.junit_report(group, f"{self.project}-{group}", files)
            self.say(f"Report {group}: {rep}" + (f"; {rep.message}" if rep.message else ""))
        if not allowed:
            self._phase("UPLOAD_ARTIFACTS", SKIPPED, message="skipped with the later phases")
            return None, reports, True
        if spec.artifacts is None:
            self._phase("UPLOAD_ARTIFACTS", SUCCEEDED, t0, message="no artifacts")
            return None, reports, True
        key = "/".join(filter(None, [spec.artifacts.s3_prefix, name or f"{self.project}.zip"]))
        art = artifacts.store(picked.artifact_files, key, self.sandbox, self.bucket or DEFAULT_BUCKET,
                              create_bucket=self.bucket is None)
        if not art.ok:
            self._failed_upload(art.message)
            self._phase("UPLOAD_ARTIFACTS", FAILED, t0, message=art.message)
            return art, reports, False
        self.say(art.message)
        self._phase("UPLOAD_ARTIFACTS", SUCCEEDED, t0, message=art.url or "not uploaded")
        return art, reports, True

    def _failed_upload(self, message: str) -> None:
        self.say("Phase complete: UPLOAD_ARTIFACTS State: FAILED")
        self.say(f"Phase context status code: {message}")

    def _cleanup(self) -> None:
        if self.shell is not None:
            self.shell.close()
        if self.container is not None:
            engine.remove_quietly(self.container)
        if self.relay is not None:
            self.relay.stop()
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.remove()
