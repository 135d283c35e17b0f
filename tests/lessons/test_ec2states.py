"""The EC2 lifecycle recorder and drawing, against real moto (validate_ec2=True)."""
from __future__ import annotations

import doctest

import pytest

from coursekit import aws
from coursekit.lessons import ec2states
from coursekit.errors import LessonError

UBUNTU = "ami-1e749f67"


@pytest.fixture(scope="module")
def recorded():
    with aws.sandbox(validate_ec2=True) as sb:
        rec = ec2states.Recorder(sb.client("ec2"))
        ids = rec.launch(ImageId=UBUNTU, InstanceType="t3.micro")
        rec.act("reboot", ids)
        rec.act("stop", ids)
        rec.act("start", ids)
        rec.act("terminate", ids)
        other = rec.launch(ImageId=UBUNTU, InstanceType="t3.micro")
        rec.act("stop", other)
        after_terminate = rec.act("terminate", other)
        restarted = rec.act("start", ids)  # AWS refuses to start a terminated instance; moto does not
        yield rec, ids, other, after_terminate, restarted


def edges(rec):
    return {(t.before, t.after, t.via) for t in rec.transitions()}


def test_every_documented_transition_is_seen(recorded):
    rec, *_ = recorded
    assert {(t.before, t.after) for t in rec.transitions() if t.documented} == set(ec2states.AWS_TRANSITIONS)


def test_answers_show_the_in_between_state_and_describe_the_end_state(recorded):
    rec, *_ = recorded
    e = edges(rec)
    assert ("running", "stopping", "stop") in e and ("stopping", "stopped", "stop, then describe") in e
    assert ("stopped", "pending", "start") in e and ("pending", "running", "start, then describe") in e
    assert ("running", "shutting-down", "terminate") in e
    assert ("shutting-down", "terminated", "terminate, then describe") in e
    assert ("pending", "running", "launch, then describe") in e
    assert ("running", "running", "reboot, then describe") in e
    assert ("stopped", "shutting-down", "terminate") in e


def test_moto_moves_states_instantly_and_allows_restarting_a_terminated_instance(recorded):
    rec, ids, other, after_terminate, restarted = recorded
    assert after_terminate == {other[0]: "terminated"}  # no shutting-down left to see
    assert restarted == {ids[0]: "running"}
    undocumented = [t for t in rec.transitions() if not t.documented]
    assert [(t.before, t.after, t.via) for t in undocumented] == [("terminated", "pending", "start")]
    assert "not a transition AWS allows" in str(undocumented[0])


def test_observations_keep_the_order_and_the_source(recorded):
    rec, ids, *_ = recorded
    mine = [(o.state, o.action, o.source) for o in rec.observations if o.instance == ids[0]][:4]
    assert mine == [("pending", "launch", "answer"), ("running", "launch", "describe"),
                    ("running", "reboot", "describe"), ("stopping", "stop", "answer")]
    assert all(o.seconds == 0 for o in rec.observations if o.source == "answer")
    assert rec.last_state(ids[0]) == "running"


def test_draw_makes_a_png_with_and_without_observations(recorded, tmp_path):
    rec, *_ = recorded
    for transitions in (rec.transitions(), []):
        fig = ec2states.draw(transitions)
        path = tmp_path / "states.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_unknown_action_is_refused_before_any_call():
    with pytest.raises(LessonError) as info:
        ec2states.Recorder(ec2=None).act("pause", ["i-1"])
    assert "unknown action 'pause'" in info.value.problem and "stop" in info.value.fix


def test_docstring_examples():
    assert doctest.testmod(ec2states).failed == 0
