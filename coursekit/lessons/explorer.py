"""A small widget to look inside an image's layers: pick an image, pick a layer, see its files.

Lesson: introduced in ``03-images-and-layers``. Built on :mod:`coursekit.docker.layers`: each image
is ``docker save``-d once (into a temporary folder kept while the widget lives) and every
layer's sha256 is checked against the config before its files are listed.

>>> from coursekit.lessons.explorer import layer_explorer
>>> layer_explorer(["coursekit/busybox:v1"])      # doctest: +SKIP
"""
from __future__ import annotations

import html
import tempfile
import weakref

from ..docker import engine, layers
from ..ui.palette import BAD, GOOD, WARN

#: At most this many files are listed per layer (a base layer has thousands).
MAX_ROWS = 200
_COLOURS = {"added": GOOD, "changed": WARN, "deleted": BAD}


def _table(changes: list, limit: int = MAX_ROWS) -> str:
    files = [c for c in changes if c.type != "dir"]
    counts = {k: sum(c.kind == k for c in files) for k in _COLOURS}
    head = (f"<b>{len(files)} file{'' if len(files) == 1 else 's'}</b>: " + ", ".join(
        f'<span style="color:{_COLOURS[k]}">{n} {k}</span>' for k, n in counts.items())
        + f", {sum(c.size for c in files) / 1e6:.2f} MB of content")
    files.sort(key=lambda c: (-c.size, c.path))  # biggest first: where the bytes are
    rows = "".join(
        f'<tr><td style="color:{_COLOURS[c.kind]}">{c.kind}</td><td style="text-align:right">{c.size:,}</td>'
        f"<td><code>/{html.escape(c.path)}</code>{' (whiteout)' if c.type in ('whiteout', 'opaque') else ''}</td></tr>"
        for c in files[:limit])
    more = f"<p>... and {len(files) - limit} more (biggest shown first)</p>" if len(files) > limit else ""
    return (f"<p>{head}</p><table><tr><th>kind</th><th>bytes</th><th>path</th></tr>{rows}</table>{more}")


def layer_explorer(images: list[str]):
    """An ipywidgets box: a Dropdown of ``images`` (tags), a Dropdown of their layers, and their files.

    Teaches: a layer is a diff (files added, changed, or deleted with a whiteout), and its
    identity is the sha256 of its tar. Images are saved on first selection, so the first
    look at a large image takes a few seconds.
    """
    import ipywidgets as w

    cache: dict[str, layers.SavedImage] = {}
    tmp = tempfile.TemporaryDirectory(prefix="explorer-", dir=engine.scratch_dir())  # the reaper removes it too
    pick_image = w.Dropdown(options=list(images), description="image")
    pick_layer = w.Dropdown(options=[], description="layer")
    out = w.HTML()
    box = w.VBox([w.HBox([pick_image, pick_layer]), out])
    weakref.finalize(box, tmp.cleanup)  # the saved archives go when the widget (or the kernel) does

    def saved(tag: str) -> layers.SavedImage:
        if tag not in cache:
            cache[tag] = layers.save(tag, f"{tmp.name}/{len(cache)}")
        return cache[tag]

    def on_image(_=None):
        out.value = f"<i>saving {html.escape(pick_image.value)} and checking its layers...</i>"
        try:
            s = saved(pick_image.value)
        except Exception as e:  # e.g. the example image was already removed
            pick_layer.options = []
            out.value = f"<b>Cannot open {html.escape(pick_image.value)}</b>: {html.escape(str(e))}"
            return
        pick_layer.options = [(f"{l.index}: sha256:{l.sha256[:12]} {l.size / 1e6:.2f} MB"
                               f"{'' if l.verified else ' (MISMATCH)'}", l.index) for l in s.layers]
        top = s.layers[-1].index  # start at the top layer: the image's own last step
        if pick_layer.value == top:
            on_layer()
        else:
            pick_layer.value = top  # calls on_layer

    def on_layer(_=None):
        if pick_layer.value is None or pick_image.value not in cache:
            return
        s = cache[pick_image.value]
        try:
            out.value = _table(layers.layer_files(s, pick_layer.value))
        except OSError:  # the saved copy went with the clean-up cell: save it again on the next pick
            cache.pop(pick_image.value, None)
            out.value = (f"<i>The saved copy of {html.escape(pick_image.value)} was removed by the clean-up; "
                         "pick the image again to reopen it.</i>")

    pick_image.observe(on_image, names="value")
    pick_layer.observe(on_layer, names="value")
    on_image()
    return box
