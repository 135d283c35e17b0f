"""IAM policy documents, read the way a learner writes them: problems with their line, and
an explanation of each line.

>>> from coursekit import policies
>>> policies.check('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
...                '"Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}]}')["Version"]
'2012-10-17'

* :func:`check` parses a policy (JSON text or a dict) and raises :class:`PolicyError` listing
  every problem with the line at fault: JSON syntax (a trailing comma, single quotes, a missing
  comma, comments ...), a missing ``Version``/``Statement``, a misspelt key (``"Actions"``), an
  ``Effect`` other than ``Allow``/``Deny``, an ``Action`` that is not ``service:Name`` text, a
  ``Resource`` that is not an ARN, a key given twice. A dict is numbered as
  :func:`dumps` prints it. :func:`problems` returns the list instead of raising.
* :func:`explain` says in plain words what each line means.
* :func:`decide` applies AWS's documented evaluation rules (an explicit Deny wins, else an
  Allow, else denied by default) to say *which* statement allows or denies a call. moto has no
  ``simulate_principal_policy``; this plays that part. It does not evaluate ``Condition`` blocks
  (moto does not either, for S3): it says so when one applies.

``kind`` is ``"identity"`` (attached to a user, group or role: no ``Principal``), ``"trust"``
(a role's trust policy: ``Principal``, no ``Resource``) or ``"resource"`` (a bucket policy:
both). Lesson: ``12-iam`` (and its exercise).
"""
from __future__ import annotations

# The parts live in jsonlines (JSON with lines), grammar, explanation (plain words) and
# evaluation (AWS's evaluation rules); this facade gathers the names lessons use.
from .grammar import KINDS, VERSION, PolicyError, check, dumps, problems
from .evaluation import DENIED_CODES, Attempt, Decision, action_for, attempt, decide, session_for
from .explanation import Explanation, describe_action, describe_resource, explain
from .jsonlines import Problem

__all__ = [
    "DENIED_CODES",
    "KINDS",
    "VERSION",
    "Attempt",
    "Decision",
    "Explanation",
    "PolicyError",
    "Problem",
    "action_for",
    "attempt",
    "check",
    "decide",
    "describe_action",
    "describe_resource",
    "dumps",
    "explain",
    "problems",
    "session_for",
]
