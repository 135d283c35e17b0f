"""Unit tests of wordcount (pyproject.toml puts src/ on pytest's import path)."""
from wordcount import top, words


def test_words_are_lower_case():
    assert words("The cat, the HAT.") == ["the", "cat", "the", "hat"]


def test_apostrophes_stay_inside_words():
    assert words("Don't 'quote' me") == ["don't", "quote", "me"]


def test_top_counts_and_orders():
    assert top("b a b c a b", 2) == [("b", 3), ("a", 2)]


def test_ties_are_alphabetical():
    assert top("pear apple fig", 3) == [("apple", 1), ("fig", 1), ("pear", 1)]
