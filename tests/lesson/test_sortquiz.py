"""Sorting quizzes (lesson 09): every placement is judged and explained, in code and in the widget."""
from __future__ import annotations

import pytest

from coursekit.errors import LessonError
from coursekit.lesson.sortquiz import SortQuiz, SortQuizError, sort_quiz

BINS = ["IaaS", "PaaS", "SaaS"]


@pytest.fixture
def quiz() -> SortQuiz:
    return sort_quiz("IaaS, PaaS or SaaS?", BINS, {
        "Amazon EC2": ("IaaS", "You run the OS yourself.", {"PaaS": "Nothing runs your code for you."}),
        "AWS Lambda": ("PaaS", "You bring code, AWS runs the rest."),
        "Amazon QuickSight": ("SaaS", "Finished software in the browser."),
    })


def test_a_right_placement_says_why(quiz):
    p = quiz.place("AWS Lambda", "PaaS")
    assert p.correct is True and p.explanation == "You bring code, AWS runs the rest."
    assert str(p) == "✔ Right: AWS Lambda is PaaS. You bring code, AWS runs the rest."


def test_a_wrong_placement_explains_that_bin_and_names_the_right_one(quiz):
    p = quiz.place("Amazon EC2", "PaaS")
    assert p.correct is False
    assert p.explanation == "Nothing runs your code for you. It belongs in IaaS."


def test_without_a_specific_note_the_general_reason_is_given(quiz):
    p = quiz.place("Amazon EC2", "SaaS")
    assert p.explanation == "It belongs in IaaS: You run the OS yourself."


def test_check_scores_every_item_and_counts_unplaced_ones(quiz):
    result = quiz.check({"Amazon EC2": "IaaS", "AWS Lambda": "SaaS"})
    assert (result.score, result.total) == (1, 3)
    assert [p.correct for p in result.placements] == [True, False, None]
    assert [p.item for p in result.wrong] == ["AWS Lambda"]
    text = str(result)
    assert text.startswith("1/3 in the right place") and "not placed yet: Amazon QuickSight" in text.replace("… Not", "not")
    assert quiz.last is result
    assert "1/3 in the right place" in result._repr_html_()


@pytest.mark.parametrize("build, words", [
    (lambda: sort_quiz("q", ["IaaS"], {"x": ("IaaS", "why")}), "two or more distinct bin names"),
    (lambda: sort_quiz("q", ["IaaS", "IaaS"], {"x": ("IaaS", "why")}), "two or more distinct bin names"),
    (lambda: sort_quiz("q", BINS, {}), "at least one item"),
    (lambda: sort_quiz("q", BINS, {"x": ("Iaas", "why")}), "its bin 'Iaas' is not one of the bins"),
    (lambda: sort_quiz("q", BINS, {"x": ("IaaS", "why", {"FaaS": "no"})}), "not wrong bins"),
    (lambda: sort_quiz("q", BINS, {"x": ("IaaS", "why", {"IaaS": "no"})}), "not wrong bins"),
    (lambda: sort_quiz("q", BINS, {"x": ("IaaS", "  ")}), "has no explanation"),
    (lambda: sort_quiz("q", BINS, {"x": "IaaS"}), "expected (bin, why)"),
])
def test_a_badly_built_quiz_says_what_is_wrong(build, words):
    with pytest.raises(SortQuizError) as info:
        build()
    assert words in info.value.problem and info.value.fix
    assert isinstance(info.value, LessonError) and isinstance(info.value, ValueError)


def test_answers_must_name_known_items_and_bins(quiz):
    with pytest.raises(SortQuizError, match="not one of the items"):
        quiz.place("Amazon S3", "IaaS")
    with pytest.raises(SortQuizError, match="not a bin"):
        quiz.place("Amazon EC2", "FaaS")
    with pytest.raises(SortQuizError, match="not items of this quiz"):
        quiz.check({"Amazon S3": "IaaS"})
    with pytest.raises(SortQuizError, match="must be a dict"):
        quiz.check([("Amazon EC2", "IaaS")])


def test_the_widget_judges_what_was_clicked(quiz):
    box = quiz.widget()
    assert list(box.pickers) == list(quiz.items)
    assert all(p.value is None and list(p.options) == BINS for p in box.pickers.values())
    box.button.click()
    assert "Place at least one item first" in box.feedback.value
    box.pickers["Amazon EC2"].value = "PaaS"
    box.pickers["AWS Lambda"].value = "PaaS"
    box.button.click()
    html = box.feedback.value
    assert "1/3 in the right place" in html
    assert "Nothing runs your code for you. It belongs in IaaS." in html
    assert "Amazon QuickSight: not placed yet" in html
    for name, pick in box.pickers.items():
        pick.value = quiz.items[name].answer
    box.button.click()
    assert "3/3 in the right place" in box.feedback.value and "all sorted" in box.feedback.value


def test_item_names_are_shown_as_text_not_markup():
    q = sort_quiz("Which `bin`?", ["a", "b"], {"<img src=x onerror=alert(1)>": ("a", "because <b>")})
    box = q.widget()
    row_label = box.children[1].children[0].value
    assert "<img" not in row_label and "&lt;img" in row_label
    assert "<code>bin</code>" in box.children[0].value
    box.pickers["<img src=x onerror=alert(1)>"].value = "b"
    box.button.click()
    assert "<img" not in box.feedback.value and "because &lt;b&gt;" in box.feedback.value


def test_without_jupyterlab_the_quiz_reads_as_text(quiz):
    text = repr(quiz)
    assert text.splitlines()[:2] == ["IaaS, PaaS or SaaS?", "bins: IaaS | PaaS | SaaS"]
    assert "[ ] Amazon EC2" in text and ".check(" in text
