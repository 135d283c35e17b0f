"""What every lesson notebook calls: ``start`` at the top, ``needs_engine`` before a Docker
step, ``finish`` at the end.

>>> import coursekit as ck
>>> mode = ck.start("01-containers-and-vms")          # doctest: +SKIP
>>> if ck.needs_engine("docker run --rm coursekit/busybox:v1 hostname",
...                    shows="the container's hostname: 12 hex digits"):   # doctest: +SKIP
...     print(ck.engine.run("coursekit/busybox:v1", "hostname"))

Without an engine (Binder, or ``COURSEKIT_NO_ENGINE=1``), ``needs_engine`` prints what the
step would run and show, says why it cannot run here, and returns False, so the cell skips
its body instead of failing. Nothing is faked: no made-up output is ever printed.
"""
from __future__ import annotations


from ..docker import engine
from ..errors import install_notebook_handler
from .modes import NO_ENGINE, Mode, mode
from ..ui.notebook import show
from ..ui.palette import GOLD, GOOD, MUTED

_current_lesson: str | None = None
#: Docker steps skipped since ``start``: the first one explains why, the others stay short.
_skipped = 0
#: True when ``start`` already said there is no engine and how to get one (not said again).
_fix_shown = False

#: What no-engine mode means for the lesson, said once at the top.
_NO_ENGINE_PLAN = ("Docker steps show the command they would run and what you would see, without running it; "
                   "everything else, the AWS sandbox included, runs for real.")


#: A coloured dot per mode, drawn with a plain glyph (emoji fonts are not everywhere).
_DOT = {"full": GOOD, "offline": GOLD}


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (fixes come from several places, some without one)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _dot(mode_name: str) -> str:
    return f'<span style="color:{_DOT.get(mode_name, MUTED)}">&#9679;</span>'


def tell_checks_about_the_engine() -> None:
    """``check()`` then asks this engine whether it answers (exercises never import the engine themselves)."""
    from ..exercises import checks

    checks.set_engine_probe(engine.available)


def start(lesson: str) -> Mode:
    """Set up a lesson: friendly errors, leftovers of dead kernels removed, the mode shown."""
    global _current_lesson, _skipped, _fix_shown
    _current_lesson, _skipped = lesson, 0
    install_notebook_handler()
    tell_checks_about_the_engine()
    m = mode()
    removed = ""
    if m != NO_ENGINE:
        rep = engine.reap_dead_sessions()
        if rep.total:
            removed = f" (tidied up after an earlier kernel: {rep})"
    icon = _dot(m.name)
    what = f" {_NO_ENGINE_PLAN}" if m == NO_ENGINE else ""
    _fix_shown = m == NO_ENGINE and bool(m.to_full)
    fix = f"\n\nTo get to full mode: {_sentence(m.to_full)}" if m.to_full else ""
    show(f"{icon} **{lesson}** — mode: **{m.name}**. {m.why}.{what}{removed}{fix}",
          f"[{lesson}] mode: {m.name}. {m.why}.{what}{removed}{fix}")
    return m


def needs_engine(does: str, shows: str = "", *, why: str = "") -> bool:
    """True when the Docker engine can run this step; otherwise explain the step and return False.

    ``does``: the command or code the step runs (as a learner would type it);
    ``shows``: what the learner would see, in words (never invented output);
    ``why``: what the step teaches, shown in no-engine mode so the lesson still reads well.

    The first skipped step of a lesson says why it cannot run and how to run it for real; the
    later ones only say what they would run and show, so a lesson does not repeat one paragraph
    at every Docker step.
    """
    global _skipped
    if engine.available():
        return True
    st = engine.status()
    _skipped += 1
    seen = f"\n\n*What it would show:* {shows}" if shows else ""
    teach = f"\n\n*Why it matters:* {why}" if why else ""
    text_extra = (f"  it would show: {shows}\n" if shows else "") + (f"  why it matters: {why}\n" if why else "")
    if _skipped == 1:
        how = ("the top of this lesson says how to run it for real." if _fix_shown
               else f"to run it for real: {_sentence(st.fix)}")
        show(
            f"{_dot('no engine')} **This step needs a Docker engine**, and there is none here: {st.reason}. "
            f"So it is not run, and nothing is made up in its place.\n\n"
            f"It would run:\n```\n{does}\n```{seen}{teach}\n\n"
            f"Every Docker step of this lesson does the same: it shows what it would run and what you would "
            f"see. The **What you should see** notes describe a run with an engine. Read on: the next steps "
            f"still make sense; {how}",
            f"[skipped: needs a Docker engine; {st.reason}]\n  it would run: {does}\n{text_extra}"
            f"  to run it for real: {_sentence(st.fix)}\n",
        )
    else:
        show(
            f"{_dot('no engine')} **Skipped: needs a Docker engine** (no engine here, as said above).\n\n"
            f"It would run:\n```\n{does}\n```{seen}{teach}\n\nRead on.",
            f"[skipped: needs a Docker engine]\n  it would run: {does}\n{text_extra}",
        )
    return False


def finish() -> None:
    """The cleanup cell: remove everything this notebook started, and say what was removed."""
    rep = engine.cleanup()
    where = f"{_current_lesson}: " if _current_lesson else ""
    show(f"Clean-up: {where}{rep}.", f"{where}{rep}.")
