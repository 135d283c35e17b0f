"""Is this a notebook, and showing things in one: the one copy of what the display helpers share.

:func:`in_notebook` (an IPython kernel is running), :func:`show` (Markdown in a notebook, plain
text elsewhere) and :func:`html_text` (text as HTML, with `backticked` words as code, as the
lessons' Markdown writes them). IPython is imported only when a notebook is running.

>>> html_text("run `docker ps` & see")
'run <code>docker ps</code> &amp; see'
"""
from __future__ import annotations

import html
import re
import sys


def in_notebook() -> bool:
    """True inside a running IPython (a Jupyter kernel); False in scripts and tests."""
    ip_mod = sys.modules.get("IPython")
    return bool(ip_mod and ip_mod.get_ipython() is not None)


def show(markdown: str, text: str) -> None:
    """``markdown`` rendered in a notebook, ``text`` printed anywhere else."""
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    else:
        print(text)


def html_text(text: str, *, quote: bool = True) -> str:
    """Escape ``text`` for HTML and show `backticked` words as ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=quote))
