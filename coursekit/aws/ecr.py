"""Amazon ECR in the AWS sandbox: the part moto leaves out, done by coursekit in plain sight.

moto (the AWS fake behind :func:`coursekit.aws.sandbox`) keeps ECR's *records*: repositories,
images (a manifest and its tags, put with ``put_image``), scan-on-push and tag-mutability
settings, lifecycle policies. It runs none of the machinery behind them: no ``docker push`` or
pull (there is no registry endpoint), no vulnerability scan, and a lifecycle policy is checked
and stored but never applied; ``start_lifecycle_policy_preview`` is not implemented.

This module fills that last gap with ECR's documented evaluation rules, so that a lesson can
see what a policy *would* expire:

* rules run in ``rulePriority`` order, lowest first; each selects images by ``tagStatus``
  (``tagged`` with a ``tagPrefixList`` and/or ``tagPatternList``, ``untagged``, or ``any``);
* ``imageCountMoreThan: N`` keeps the N most recently pushed selected images and expires the
  rest; ``sinceImagePushed: N`` (``countUnit: days``) expires those pushed more than N days ago;
* an image is expired by at most one rule, and an image that a higher-priority rule *selected*
  (whether or not that rule expired it) cannot be expired by a lower-priority one.

    >>> policy = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged",
    ...     "tagPrefixList": ["build-"], "countType": "imageCountMoreThan", "countNumber": 2},
    ...     "action": {"type": "expire"}}]}
    >>> images = [image(f"sha256:{i:064x}", [f"build-{i}"], days_ago=10 - i) for i in range(4)]
    >>> [e.tags for e in preview(policy, images)]
    [('build-0',), ('build-1',)]

Lesson: ``06-registries`` (and its exercise).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional, Union

from .errors import AWSError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
_FIX = "see the rule format in lesson 06, section 8 (or AWS's 'Lifecycle policy properties' page)"


@dataclass(frozen=True)
class Expiry:
    """One image a lifecycle policy expires, and the rule that does it."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    rule: int            # the rule's rulePriority
    description: str

    def __str__(self) -> str:
        tags = ", ".join(self.tags) or "(untagged)"
        return (f"{self.digest[:19]}...  {tags:24} pushed {self.pushed_at:%Y-%m-%d %H:%M}  "
                f"expired by rule {self.rule}" + (f" ({self.description})" if self.description else ""))


def _bad(problem: str, fix: str = _FIX) -> AWSError:
    return AWSError(f"this lifecycle policy is not valid: {problem}", fix)


def parse_policy(policy: Union[str, dict]) -> list[dict]:
    """Check a lifecycle policy (JSON text or dict) as ECR does; return its rules, first to run first.

    Stricter than moto, which accepts e.g. a ``tagged`` rule without any tag list.
    """
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError as exc:
            raise _bad(f"it is not JSON ({exc})", "write it as a dict and json.dumps() it") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("rules"), list) or not policy["rules"]:
        raise _bad('it needs a non-empty list of rules: {"rules": [...]}')
    rules, priorities, untagged = [], set(), 0
    for i, rule in enumerate(policy["rules"], 1):
        where = f"rule {i}"
        if not isinstance(rule, dict) or not isinstance(rule.get("selection"), dict):
            raise _bad(f"{where} needs rulePriority, selection and action")
        prio, sel = rule.get("rulePriority"), rule["selection"]
        if isinstance(prio, bool) or not isinstance(prio, int) or prio < 1:
            raise _bad(f"{where}: rulePriority must be a whole number >= 1, not {prio!r}")
        if prio in priorities:
            raise _bad(f"two rules have rulePriority {prio}", "give every rule its own rulePriority")
        priorities.add(prio)
        if (rule.get("action") or {}).get("type") != "expire":
            raise _bad(f"{where}: the action must be {{\"type\": \"expire\"}}")
        status, count_type, n = sel.get("tagStatus"), sel.get("countType"), sel.get("countNumber")
        lists = [k for k in ("tagPrefixList", "tagPatternList") if k in sel]
        if status not in ("tagged", "untagged", "any"):
            raise _bad(f"{where}: tagStatus must be 'tagged', 'untagged' or 'any', not {status!r}")
        if status == "tagged" and not any(sel.get(k) for k in lists):
            raise _bad(f"{where} selects tagged images but names no tags",
                       'add "tagPrefixList": ["release-"] or "tagPatternList": ["release-*"]')
        if status != "tagged" and lists:
            raise _bad(f"{where}: {lists[0]} only goes with tagStatus 'tagged'")
        for pattern in sel.get("tagPatternList") or []:
            if not isinstance(pattern, str) or pattern.count("*") > 4:
                raise _bad(f"{where}: {pattern!r} is not a tag pattern (text with at most four '*')")
        untagged += status == "untagged"
        if count_type == "imageCountMoreThan":
            if "countUnit" in sel:
                raise _bad(f"{where}: countUnit goes only with countType 'sinceImagePushed'")
        elif count_type == "sinceImagePushed":
            if sel.get("countUnit") != "days":
                raise _bad(f"{where}: sinceImagePushed needs \"countUnit\": \"days\"")
        else:
            raise _bad(f"{where}: countType must be 'imageCountMoreThan' or 'sinceImagePushed', not {count_type!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _bad(f"{where}: countNumber must be a whole number >= 1, not {n!r}")
        rules.append(rule)
    rules.sort(key=lambda r: r["rulePriority"])
    if untagged > 1:
        raise _bad("more than one rule selects untagged images", "merge them into one rule")
    if any(r["selection"]["tagStatus"] == "any" for r in rules[:-1]):
        raise _bad("a rule with tagStatus 'any' must have the highest rulePriority (it runs last)")
    return rules


def _when(value: Any) -> datetime:
    """imagePushedAt as boto3 gives it (datetime), as ISO text, or as seconds since 1970 (JSON)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise AWSError(f"an image's imagePushedAt should be a date and time, not {value!r}",
                       "pass the imageDetails of describe_images, or images made with ecr.image()")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _selects(sel: dict, tags: list[str]) -> bool:
    status = sel["tagStatus"]
    if status == "any":
        return True
    if status == "untagged":
        return not tags
    prefixes = sel.get("tagPrefixList") or []
    patterns = [re.compile("^" + ".*".join(map(re.escape, p.split("*"))) + "$")
                for p in sel.get("tagPatternList") or []]
    return bool(tags) and all(any(t.startswith(p) for t in tags) for p in prefixes) and \
        all(any(rx.match(t) for t in tags) for rx in patterns)


def preview(policy: Union[str, dict], images: Iterable[dict], *, now: Optional[datetime] = None) -> list[Expiry]:
    """The images ``policy`` would expire at ``now`` (default: this moment), oldest first.

    ``images``: dicts with ``imageDigest``, ``imageTags`` and ``imagePushedAt``, as in
    ``describe_images(...)["imageDetails"]``. Images pushed in the same second are ordered as
    listed (later counts as newer), as moto lists them in push order.
    """
    rules = parse_policy(policy)
    now = _when(now or datetime.now(timezone.utc))
    imgs = [(i, img["imageDigest"], list(img.get("imageTags") or []), _when(img["imagePushedAt"]))
            for i, img in enumerate(images)]
    expired: dict[str, tuple[int, Expiry]] = {}  # digest -> (position in the list, expiry)
    seen: set[str] = set()  # digests a higher-priority rule selected: protected from later rules
    for rule in rules:
        sel = rule["selection"]
        chosen = [x for x in imgs if _selects(sel, x[2])]
        if sel["countType"] == "imageCountMoreThan":
            newest_first = sorted(chosen, key=lambda x: (x[3], x[0]), reverse=True)
            doomed = newest_first[sel["countNumber"]:]
        else:
            doomed = [x for x in chosen if now - x[3] > timedelta(days=sel["countNumber"])]
        for pos, digest, tags, when in doomed:
            if digest not in expired and digest not in seen:
                expired[digest] = (pos, Expiry(digest, tuple(tags), when, rule["rulePriority"],
                                               str(rule.get("description", ""))))
        seen |= {x[1] for x in chosen}
    return [e for _, e in sorted(expired.values(), key=lambda pe: (pe[1].pushed_at, pe[0]))]


def image(digest: str, tags: Iterable[str] = (), *, days_ago: float = 0,
          now: Optional[datetime] = None) -> dict:
    """An ``imageDetails``-shaped record for trying a policy on a made-up history."""
    when = _when(now or datetime.now(timezone.utc)) - timedelta(days=days_ago)
    return {"imageDigest": digest, "imageTags": list(tags), "imagePushedAt": when}


def images(client: Any, repository: str) -> list[dict]:
    """Every image of an ECR repository (``describe_images``, all pages)."""
    out: list[dict] = []
    for page in client.get_paginator("describe_images").paginate(repositoryName=repository):
        out += page["imageDetails"]
    return out


def preview_repository(client: Any, repository: str, *, now: Optional[datetime] = None) -> list[Expiry]:
    """What the repository's stored lifecycle policy would expire at ``now``: ECR's "preview"."""
    try:
        text = client.get_lifecycle_policy(repositoryName=repository)["lifecyclePolicyText"]
    except client.exceptions.LifecyclePolicyNotFoundException:
        raise AWSError(f"the repository {repository!r} has no lifecycle policy",
                       "put one first: ecr.put_lifecycle_policy(repositoryName=..., "
                       "lifecyclePolicyText=json.dumps(policy))") from None
    return preview(text, images(client, repository), now=now)


def expire(client: Any, repository: str, *, now: Optional[datetime] = None) -> list[Expiry]:
    """Do what ECR itself does (within a day) and moto never does: delete what the policy expires."""
    doomed = preview_repository(client, repository, now=now)
    if doomed:
        client.batch_delete_image(repositoryName=repository,
                                  imageIds=[{"imageDigest": e.digest} for e in doomed])
    return doomed


def example_manifest(name: str, layers: int = 2) -> tuple[str, str]:
    """A made-up image manifest (Docker v2 format) and its digest, for metadata-only ECR work.

    The blobs it names do not exist anywhere: it stands for "a CI build" when there is no real
    registry to take a manifest from. Returns ``(manifest text, "sha256:" + sha256 of that text)``.
    """
    def blob(what: str) -> str:
        return "sha256:" + hashlib.sha256(f"{name}/{what}".encode()).hexdigest()

    doc = {"schemaVersion": 2, "mediaType": MANIFEST_V2,
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1500,
                      "digest": blob("config")},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000 * (i + 1),
                       "digest": blob(f"layer{i}")} for i in range(layers)]}
    text = json.dumps(doc, indent=3)
    return text, "sha256:" + hashlib.sha256(text.encode()).hexdigest()
