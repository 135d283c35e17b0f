"""What the learner sees, shared by every lesson: the palette, display in or out of a notebook, plots."""
from __future__ import annotations

import doctest
import re
import sys

import pytest

from coursekit.ui import notebook, palette, plots


def test_the_doctests_run():
    for module in (notebook, palette):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_html_text_escapes_markup_and_shows_backticks_as_code():
    assert notebook.html_text("<b>`a < b`</b>") == "&lt;b&gt;<code>a &lt; b</code>&lt;/b&gt;"
    assert notebook.html_text("it's", quote=False) == "it's"
    assert notebook.html_text("it's") == "it&#x27;s"


def test_outside_a_notebook_show_prints_the_text_not_the_markdown(capsys):
    assert not notebook.in_notebook()
    notebook.show("**bold**", "plain")
    assert capsys.readouterr().out == "plain\n"


def test_every_colour_is_a_colour_and_states_have_a_background():
    colours = {k: v for k, v in vars(palette).items() if k.isupper() and isinstance(v, str)}
    assert colours and all(re.fullmatch(r"#[0-9a-f]{6}", v) for v in colours.values()), colours
    assert set(palette.BACKGROUND) == {palette.GOOD, palette.BAD, palette.WARN, palette.BUSY, palette.MUTED}
    assert len({palette.GOOD, palette.BAD, palette.WARN, palette.BUSY, palette.MUTED}) == 5  # told apart


def test_a_plot_outside_a_notebook_draws_to_a_file_and_opens_no_window(tmp_path):
    out = tmp_path / "times.png"
    fig = plots.compare_times({"container": [0.3, 0.31, 0.29], "virtual machine": [2.1, 2.4]}, title="start",
                              save=str(out))
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    assert out.stat().st_size > 1000 and fig.axes[0].get_title() == "start"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["container\n(3 runs)", "virtual machine\n(2 runs)"]


@pytest.mark.parametrize("size,text", [(812, "812 B"), (10_200, "10.2 kB"), (74_000_000, "74.0 MB"),
                                       (1_210_000_000, "1.21 GB")])
def test_sizes_read_as_a_learner_reads_them(size, text):
    assert plots.human_size(size) == text


def test_the_ui_loads_no_plotting_library_until_it_draws():
    import subprocess

    code = ("import sys, coursekit.ui.notebook, coursekit.ui.palette, coursekit.ui.plots, coursekit.ui.progress; "
            "print(sorted(m for m in ('matplotlib', 'IPython', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
