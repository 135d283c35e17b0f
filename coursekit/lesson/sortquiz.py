"""Sorting quizzes: put each service or scenario in its bin, get told why for each one.

>>> from coursekit.lesson.sortquiz import sort_quiz
>>> q = sort_quiz("IaaS or PaaS?", ["IaaS", "PaaS"],
...               {"Amazon EC2": ("IaaS", "You rent a virtual server and run its OS yourself.",
...                               {"PaaS": "Nothing runs your code for you: you install and patch the OS."}),
...                "AWS Elastic Beanstalk": ("PaaS", "You upload code; it provisions and runs the servers.")})
>>> print(q.place("Amazon EC2", "PaaS"))
✘ Amazon EC2 is not in 'PaaS': Nothing runs your code for you: you install and patch the OS. It belongs in IaaS.
>>> result = q.check({"Amazon EC2": "IaaS", "AWS Elastic Beanstalk": "PaaS"})
>>> result.score, result.total
(2, 2)

Each item has its bin, an explanation of why it belongs there, and optionally an explanation
per wrong bin (what the learner probably thought, and why not); without one, a wrong
placement gets the general explanation. In JupyterLab it shows one row per item with a
button per bin, a *Check* button, the score, and the explanation of every misplaced item
(right ones get a short confirmation). Same feedback style as :mod:`coursekit.lesson.quizzes`.

Introduced in ``09-cloud-computing`` (service types and deployment models).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LessonError
from ..ui.notebook import html_text
from ..ui.palette import GOOD, MUTED, WARN

RIGHT, WRONG, MISSING = "✔ Right", "✘ Not quite", "… Not placed yet"
_COLOURS = {True: GOOD, False: WARN, None: MUTED}


class SortQuizError(LessonError, ValueError):
    """A sorting quiz was built or answered with something it does not know."""


@dataclass(frozen=True)
class Item:
    """One thing to sort: its ``answer`` (a bin), ``why`` it goes there, and ``wrong``: bin -> why not."""

    name: str
    answer: str
    why: str
    wrong: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """The verdict on one item: where it was put (None: nowhere yet), whether that is right, and why."""

    item: str
    chosen: str | None
    correct: bool | None
    explanation: str

    def __str__(self) -> str:
        if self.correct is None:
            return f"{MISSING}: {self.item}"
        if self.correct:
            return f"{RIGHT}: {self.item} is {self.chosen}. {self.explanation}"
        return f"✘ {self.item} is not in {self.chosen!r}: {self.explanation}"


@dataclass(frozen=True)
class SortResult:
    """All placements of one attempt, in the quiz's order."""

    placements: list[Placement]

    @property
    def score(self) -> int:
        return sum(p.correct is True for p in self.placements)

    @property
    def total(self) -> int:
        return len(self.placements)

    @property
    def wrong(self) -> list[Placement]:
        return [p for p in self.placements if p.correct is False]

    def __str__(self) -> str:
        head = f"{self.score}/{self.total} in the right place"
        return "\n".join([head] + [str(p) for p in self.placements])

    def _repr_html_(self) -> str:
        return _resulthtml_text(self)


def _resulthtml_text(result: SortResult) -> str:
    rows = []
    for p in result.placements:
        colour = _COLOURS[p.correct]
        if p.correct is None:
            rows.append(f"<li style='color:{colour}'>{html_text(p.item)}: not placed yet</li>")
        elif p.correct:
            rows.append(f"<li><span style='color:{colour}'><b>✔</b></span> {html_text(p.item)}: "
                        f"<b>{html_text(p.chosen or '')}</b></li>")
        else:
            rows.append(f"<li><span style='color:{colour}'><b>✘ {html_text(p.item)}</b> is not "
                        f"<b>{html_text(p.chosen or '')}</b></span>: {html_text(p.explanation)}</li>")
    done = result.score == result.total
    head = (f"<b style='color:{_COLOURS[done]}'>{result.score}/{result.total} in the right place</b>"
            + (" &mdash; all sorted." if done else ""))
    return f"{head}<ul style='margin-top:4px'>{''.join(rows)}</ul>"


def _as_item(name: str, spec, categories: list[str]) -> Item:
    if isinstance(spec, Item):
        item = spec if spec.name == name else Item(name, spec.answer, spec.why, dict(spec.wrong))
    elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
        item = Item(name, spec[0], spec[1], dict(spec[2]) if len(spec) == 3 else {})
    else:
        raise SortQuizError(f"item {name!r}: expected (bin, why) or (bin, why, {{wrong bin: why not}}), got {spec!r}",
                            f'write e.g. {name!r}: ("{categories[0]}", "because ...")')
    if item.answer not in categories:
        raise SortQuizError(f"item {name!r}: its bin {item.answer!r} is not one of the bins {categories}",
                            "fix the spelling, or add the bin to the list of categories")
    unknown = [k for k in item.wrong if k not in categories or k == item.answer]
    if unknown:
        raise SortQuizError(f"item {name!r}: explanations for {unknown}, which are not wrong bins of {categories}",
                            "key each 'why not' explanation by one of the other bins")
    if not str(item.why).strip():
        raise SortQuizError(f"item {name!r} has no explanation", "say why it belongs in its bin: that is the lesson")
    return item


class SortQuiz:
    """A set of items to sort into ``categories``; see :func:`sort_quiz`."""

    def __init__(self, question: str, categories: list[str], items: dict):
        cats = list(categories)
        if len(cats) < 2 or len(set(cats)) != len(cats) or not all(isinstance(c, str) and c for c in cats):
            raise SortQuizError(f"a sorting quiz needs two or more distinct bin names, got {categories!r}",
                                'pass e.g. ["IaaS", "PaaS", "SaaS"]')
        if not isinstance(items, dict) or not items:
            raise SortQuizError("a sorting quiz needs at least one item", 'pass {"Amazon EC2": ("IaaS", "why"), ...}')
        self.question, self.categories = question, cats
        self.items = {name: _as_item(name, spec, cats) for name, spec in items.items()}
        self.last: SortResult | None = None
        self._widget = None

    def place(self, item: str, category: str | None) -> Placement:
        """Put ``item`` in ``category`` (None: leave it unplaced) and say whether that is right, and why."""
        if item not in self.items:
            raise SortQuizError(f"{item!r} is not one of the items to sort",
                                f"pick one of {list(self.items)}")
        it = self.items[item]
        if category is None:
            return Placement(item, None, None, "")
        if category not in self.categories:
            raise SortQuizError(f"{category!r} is not a bin of this quiz", f"pick one of {self.categories}")
        if category == it.answer:
            return Placement(item, category, True, it.why)
        why_not = it.wrong.get(category)
        return Placement(item, category, False, f"{why_not} It belongs in {it.answer}." if why_not else
                         f"It belongs in {it.answer}: {it.why}")

    def check(self, answers: dict[str, str | None]) -> SortResult:
        """Verdicts for every item (items missing from ``answers`` count as not placed)."""
        if not isinstance(answers, dict):
            raise SortQuizError(f"answers must be a dict item -> bin, not {type(answers).__name__}",
                                f'e.g. {{"{next(iter(self.items))}": "{self.categories[0]}"}}')
        extra = [k for k in answers if k not in self.items]
        if extra:
            raise SortQuizError(f"{extra} are not items of this quiz", f"the items are {list(self.items)}")
        self.last = SortResult([self.place(name, answers.get(name)) for name in self.items])
        return self.last

    def widget(self):
        """One row per item (a button per bin), a Check button and the feedback below."""
        import ipywidgets as w

        label_width = f"{min(60, max(16, max(len(n) for n in self.items) * 0.6)):.0f}em"
        rows, pickers = [], {}
        for name in self.items:
            pick = w.ToggleButtons(options=self.categories, value=None, style={"button_width": "auto"})
            pickers[name] = pick
            rows.append(w.HBox([w.HTML(html_text(name), layout=w.Layout(width=label_width)), pick]))
        button = w.Button(description="Check", button_style="primary")
        feedback = w.HTML()

        def on_click(_=None):
            result = self.check({n: p.value for n, p in pickers.items()})
            if all(p.correct is None for p in result.placements):
                feedback.value = "<i>Place at least one item first.</i>"
                return
            feedback.value = _resulthtml_text(result)

        button.on_click(on_click)
        box = w.VBox([w.HTML(f"<b>{html_text(self.question)}</b>"), *rows, button, feedback])
        box.add_class("coursekit-sortquiz")
        box.pickers, box.button, box.feedback = pickers, button, feedback
        self._widget = box
        return box

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())

    def __repr__(self) -> str:
        lines = [self.question, "bins: " + " | ".join(self.categories)]
        lines += [f"  [ ] {n}" for n in self.items]
        return "\n".join(lines + ["(answer with .check({item: bin, ...}) or use the widget in JupyterLab)"])


def sort_quiz(question: str, categories: list[str], items: dict) -> SortQuiz:
    """A sorting quiz. ``items`` maps each item to ``(bin, why)`` or ``(bin, why, {wrong bin: why not})``."""
    return SortQuiz(question, categories, items)
