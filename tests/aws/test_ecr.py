"""ECR lifecycle policies evaluated as ECR documents them, and against moto's real ECR records."""
from __future__ import annotations

import doctest
import json
from datetime import datetime, timedelta, timezone

import pytest

from coursekit import aws
from coursekit.aws import ecr
from coursekit.aws.errors import AWSError

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def rule(prio, status, count_type, n, **extra):
    sel = {"tagStatus": status, "countType": count_type, "countNumber": n, **extra}
    if count_type == "sinceImagePushed":
        sel.setdefault("countUnit", "days")
    return {"rulePriority": prio, "description": f"rule {prio}", "selection": sel, "action": {"type": "expire"}}


def img(name, tags, days_ago):
    return ecr.image(f"sha256:{name * 64}"[:71], tags, days_ago=days_ago, now=NOW)


def expired(policy, images):
    return [e.digest[7] for e in ecr.preview(policy, images, now=NOW)]


def test_aws_example_a_an_image_seen_by_a_higher_rule_is_protected():
    """AWS's 'Example A': rule 2 would expire B, but B carries a prod tag that rule 1 selected."""
    images = [img("a", ["beta-1", "prod-1"], 10), img("b", ["beta-2", "prod-2"], 9), img("c", ["beta-3"], 8)]
    policy = {"rules": [rule(1, "tagged", "imageCountMoreThan", 1, tagPrefixList=["prod"]),
                        rule(2, "tagged", "imageCountMoreThan", 1, tagPrefixList=["beta"])]}
    assert expired(policy, images) == ["a"]


def test_aws_example_b_every_prefix_must_match_some_tag():
    images = [img("a", ["beta-1", "prod-1"], 10), img("b", ["beta-2", "prod-2"], 9),
              img("c", ["beta-3", "prod-3"], 8)]
    policy = {"rules": [rule(1, "tagged", "imageCountMoreThan", 1, tagPrefixList=["beta", "prod"]),
                        rule(2, "tagged", "imageCountMoreThan", 1, tagPrefixList=["beta"])]}
    assert expired(policy, images) == ["a", "b"]


def test_age_rule_for_untagged_images_only():
    images = [img("a", [], 20), img("b", [], 3), img("c", ["v1"], 100)]
    assert expired({"rules": [rule(1, "untagged", "sinceImagePushed", 14)]}, images) == ["a"]


def test_count_rule_keeps_the_newest_and_an_any_rule_runs_last():
    images = [img(c, [f"build-{i}"], 10 - i) for i, c in enumerate("abcde")] + [img("f", ["release-1"], 50)]
    policy = {"rules": [rule(1, "tagged", "imageCountMoreThan", 9999, tagPatternList=["release-*"]),
                        rule(2, "any", "imageCountMoreThan", 2)]}
    # the release image is protected by rule 1 (selected, never expired); 'any' keeps the 2 newest
    assert expired(policy, images) == ["a", "b", "c"]


def test_patterns_are_whole_tag_wildcards():
    images = [img("a", ["prod"], 5), img("b", ["preprod"], 5), img("c", ["prod-7"], 5)]
    policy = {"rules": [rule(1, "tagged", "sinceImagePushed", 1, tagPatternList=["prod*"])]}
    assert sorted(expired(policy, images)) == ["a", "c"]


def test_same_second_pushes_later_in_the_list_counts_as_newer():
    images = [img(c, ["nightly"] if c == "c" else [f"b{c}"], 0) for c in "abc"]
    policy = {"rules": [rule(1, "tagged", "imageCountMoreThan", 1, tagPrefixList=["b"])]}
    assert expired(policy, images) == ["a"]


def test_json_friendly_times_are_accepted():
    ts = (NOW - timedelta(days=30)).timestamp()
    images = [{"imageDigest": "sha256:" + "a" * 64, "imagePushedAt": ts},
              {"imageDigest": "sha256:" + "b" * 64, "imagePushedAt": (NOW - timedelta(days=1)).isoformat()}]
    assert expired(json.dumps({"rules": [rule(1, "untagged", "sinceImagePushed", 7)]}), images) == ["a"]


@pytest.mark.parametrize("policy, words", [
    ("not json", "not JSON"),
    ({"rules": []}, "non-empty list of rules"),
    ({"rules": [rule(1, "tagged", "imageCountMoreThan", 3)]}, "names no tags"),
    ({"rules": [rule(1, "untagged", "imageCountMoreThan", 3, tagPrefixList=["x"])]}, "only goes with"),
    ({"rules": [rule(1, "any", "imageCountMoreThan", 3), rule(2, "untagged", "imageCountMoreThan", 1)]},
     "must have the highest rulePriority"),
    ({"rules": [rule(1, "untagged", "imageCountMoreThan", 3), rule(1, "any", "imageCountMoreThan", 5)]},
     "two rules have rulePriority 1"),
    ({"rules": [rule(1, "untagged", "imageCountMoreThan", 0)]}, "countNumber"),
    ({"rules": [rule(1, "untagged", "sinceImagePushed", 3, countUnit="weeks")]}, "countUnit"),
    ({"rules": [rule(1, "untagged", "imageCountMoreThan", 3, countUnit="days")]}, "countUnit goes only"),
    ({"rules": [rule(1, "sometimes", "imageCountMoreThan", 3)]}, "tagStatus must be"),
    ({"rules": [rule(1, "untagged", "imageCountMoreThan", 1), rule(2, "untagged", "sinceImagePushed", 1)]},
     "more than one rule selects untagged"),
])
def test_bad_policies_are_explained(policy, words):
    with pytest.raises(AWSError, match=words):
        ecr.preview(policy, [], now=NOW)


def test_example_manifest_digest_is_the_sha256_of_its_text():
    import hashlib

    text, digest = ecr.example_manifest("ci-build-7")
    assert digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert json.loads(text)["mediaType"] == ecr.MANIFEST_V2
    assert ecr.example_manifest("ci-build-8")[1] != digest


@pytest.fixture
def sandbox():
    sb = aws.sandbox()
    yield sb
    sb.stop()


def test_against_moto_preview_then_expire_deletes_what_the_policy_names(sandbox):
    client = sandbox.client("ecr")
    client.create_repository(repositoryName="shop/web")
    for i in range(5):
        text, digest = ecr.example_manifest(f"build-{i}")
        client.put_image(repositoryName="shop/web", imageManifest=text, imageTag=f"build-{i}", imageDigest=digest)
    text, digest = ecr.example_manifest("untagged")
    client.put_image(repositoryName="shop/web", imageManifest=text, imageDigest=digest)
    policy = {"rules": [rule(1, "untagged", "sinceImagePushed", 7),
                        rule(2, "tagged", "imageCountMoreThan", 2, tagPrefixList=["build-"])]}
    client.put_lifecycle_policy(repositoryName="shop/web", lifecyclePolicyText=json.dumps(policy))

    now = [e.tags for e in ecr.preview_repository(client, "shop/web")]
    assert sorted(now) == [("build-0",), ("build-1",), ("build-2",)]
    later = ecr.preview_repository(client, "shop/web", now=datetime.now(timezone.utc) + timedelta(days=8))
    assert len(later) == 4
    assert sum(1 for e in later if not e.tags) == 1

    gone = ecr.expire(client, "shop/web")
    assert len(gone) == 3
    left = sorted(t for i in ecr.images(client, "shop/web") for t in i.get("imageTags", []))
    assert left == ["build-3", "build-4"]
    assert len(ecr.images(client, "shop/web")) == 3  # the untagged one is only 0 days old


def test_a_repository_without_policy_is_explained(sandbox):
    client = sandbox.client("ecr")
    client.create_repository(repositoryName="empty")
    with pytest.raises(AWSError, match="has no lifecycle policy"):
        ecr.preview_repository(client, "empty")


def test_docstring_examples():
    assert doctest.testmod(ecr).failed == 0
