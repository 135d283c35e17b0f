"""Unit tests of greeter: fast, no server needed. The Build stage runs them (buildspec.yml)."""
from app import VERSION, greeting


def test_greets_by_name():
    assert greeting("Ana").startswith("Hello, Ana!")


def test_greets_the_world_when_no_name_is_given():
    assert greeting("  ").startswith("Hello, world!")


def test_says_which_version_answers():
    assert greeting("Ana").endswith(f"(greeter {VERSION})")
