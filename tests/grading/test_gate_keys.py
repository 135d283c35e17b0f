"""Request bodies read as the engine reads them (no engine needed): Go's JSON matches keys case-insensitively."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from coursekit.grading.gate import keys
from coursekit.grading.gate.routes import Refused

GATE = Path(keys.__file__).parent
#: Keys the rules read only in the engine's answers (never in a submission's request).
ANSWER_ONLY = {"ALL", "Answer", "Containers", "CreatedBy", "Names", "NetworkSettings", "RepoDigests", "RepoTags",
               "Running", "ServiceID", "State", "Swarm", "Tags"}


def test_every_key_a_rule_reads_is_put_in_its_own_spelling_first():
    read = set()
    for module in ("containers", "services", "storage", "images", "policy"):
        read |= set(re.findall(r'(?:get\(|\[)"([A-Z][A-Za-z]+)"', (GATE / f"{module}.py").read_text()))
    assert read - ANSWER_ONLY <= keys.FIELDS, f"add to keys.FIELDS: {sorted(read - ANSWER_ONLY - keys.FIELDS)}"


def test_other_spellings_become_the_apis_and_the_submissions_own_keys_stay():
    doc = keys.loads(b'{"hostconfig": {"MOUNTS": [{"type": "volume", "\\u017fource": "d"}]}, '
                     b'"labels": {"source": "mine", "Source": "also mine"}, "Mode": {"replicated": {"replicas": 2}}}')
    assert doc == {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "d"}]},
                   "Labels": {"source": "mine", "Source": "also mine"}, "Mode": {"Replicated": {"Replicas": 2}}}


@pytest.mark.parametrize("body", [b'{"Image": "a", "image": "b"}', b'{"Image": "a", "Image": "b"}',
                                  b'{"HostConfig": {"Binds": [], "BINDS": ["/:/h"]}}', b'not json'])
def test_a_body_that_says_one_thing_twice_is_refused(body):
    with pytest.raises(Refused) as err:
        keys.loads(body)
    assert err.value.status == 400
