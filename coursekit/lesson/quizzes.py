"""Check-your-understanding quizzes: pick an answer, get told why it is right or wrong.

>>> from coursekit import quiz
>>> q = quiz("What do containers on one host share?",
...          {"a hypervisor": "No: a hypervisor runs VMs; containers need none.",
...           "the kernel": "Yes: every container is a process on the host's kernel.",
...           "a guest OS": "No: there is no guest OS, only the host's kernel."},
...          answer="the kernel")
>>> q.choose("a hypervisor").correct
False
>>> q.choose("the kernel").correct
True

In JupyterLab it shows as radio buttons, a *Check* button and the explanation of the chosen
answer. Every option carries its own explanation, so a wrong answer teaches too.
Introduced in ``00-welcome``; every lesson ends with one.
"""
from __future__ import annotations

from dataclasses import dataclass
from ..ui.notebook import html_text
from ..ui.palette import GOOD, WARN


@dataclass
class Verdict:
    choice: str
    correct: bool
    explanation: str

    def __str__(self) -> str:
        return f"{'✔ Right' if self.correct else '✘ Not quite'}: {self.explanation}"


class Quiz:
    def __init__(self, question: str, options: dict[str, str], answer: str):
        if answer not in options:
            raise ValueError(f"the answer {answer!r} is not one of the options {list(options)}")
        self.question, self.options, self.answer = question, dict(options), answer
        self.last: Verdict | None = None
        self._widget = None

    def choose(self, choice: str) -> Verdict:
        if choice not in self.options:
            raise ValueError(f"{choice!r} is not an option; pick one of {list(self.options)}")
        self.last = Verdict(choice, choice == self.answer, self.options[choice])
        return self.last

    def widget(self):
        import ipywidgets as w

        radio = w.RadioButtons(options=list(self.options), value=None, layout=w.Layout(width="auto"))
        button = w.Button(description="Check", button_style="primary")
        feedback = w.HTML()

        def on_click(_):
            if radio.value is None:
                feedback.value = "<i>Pick an answer first.</i>"
                return
            v = self.choose(radio.value)
            color = GOOD if v.correct else WARN
            feedback.value = f"<span style='color:{color}'><b>{'✔ Right' if v.correct else '✘ Not quite'}</b>" \
                             f"</span>: {html_text(v.explanation)}"

        button.on_click(on_click)
        box = w.VBox([w.HTML(f"<b>{html_text(self.question)}</b>"), radio, button, feedback])
        box.add_class("coursekit-quiz")
        self._widget = box
        return box

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())

    def __repr__(self) -> str:
        opts = "\n".join(f"  ( ) {o}" for o in self.options)
        return f"{self.question}\n{opts}\n(answer with .choose(<option>) or use the widget in JupyterLab)"


def quiz(question: str, options: dict[str, str], answer: str) -> Quiz:
    """A multiple-choice question; ``options`` maps each choice to the explanation shown for it."""
    return Quiz(question, options, answer)
