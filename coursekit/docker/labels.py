"""Every label coursekit puts on what it makes: the one list of keys.

Every container, network, volume, service and throw-away image coursekit creates carries
:data:`OWNER` (value :data:`OWNER_VALUE`) and :data:`SESSION` (which process made it), which is
how ``coursekit clean``, the reaper and the tests find what is ours; :func:`coursekit.docker.engine.labels`
puts them on. The other keys say what a resource is for.

>>> OWNER, SESSION
('org.coursekit.owner', 'org.coursekit.session')
"""
from __future__ import annotations

#: Ours: every resource coursekit creates carries ``OWNER=OWNER_VALUE``.
OWNER, OWNER_VALUE = "org.coursekit.owner", "coursekit"
#: The session (host, process, random part) that made it, its process id and machine (for the reaper).
SESSION, PID, HOST = "org.coursekit.session", "org.coursekit.pid", "org.coursekit.host"
#: The lesson it was made for, and the call that made it (for leftovers and messages).
LESSON, CALL = "org.coursekit.lesson", "org.coursekit.call"
#: A throw-away image (a lesson's build): ``coursekit clean --images`` removes them.
SCRATCH_LABEL = "org.coursekit.scratch"
#: On the course's images: the name it stands for, its recipe's hash, and whether it was pulled or built.
IMAGE_LABEL, RECIPE_LABEL, SOURCE_LABEL = "org.coursekit.image", "org.coursekit.recipe", "org.coursekit.source"
#: What a container is for: "registry", "codebuild", "aws-relay", "pipeline-deploy".
ROLE_LABEL = "org.coursekit.role"
#: A grading sandbox (value: the student), and the Swarm grading run it belongs to.
GRADE_LABEL, GRADE_RUN_LABEL = "org.coursekit.grade", "org.coursekit.grade.run"
#: A pipeline's deploys (value: the pipeline), and a build's containers (value: the build id).
PIPELINE_LABEL, BUILD_LABEL = "org.coursekit.pipeline", "org.coursekit.build"
#: What a graded submission made through its gate (value: the submission's namespace), and, on the images
#: it built, the grading session whose clean-up (or reaper) removes them.
TENANT_LABEL, GATE_SESSION_LABEL = "org.coursekit.tenant", "org.coursekit.gate.grader"
