"""Authoring aid: turn a percent-format draft into a clean lesson notebook.

    python tools/nbbuild.py draft.py notebooks/NN-name.ipynb

The notebooks in notebooks/ and solutions/ are the source of truth (drafts are not kept).
In a draft, a cell starts with '# %%' (code) or '# %% [markdown]' (markdown, each line
prefixed with '# '); 'tags=a,b' after the marker sets cell tags (e.g. 'tags=checks').
The result has no outputs, stable cell ids and a Python 3 kernelspec."""
import sys, re
import nbformat as nbf

def build(src, dst):
    text = open(src).read()
    cells = []
    cur = None
    for line in text.splitlines():
        m = re.match(r"^# %%( \[markdown\])?(?:\s+tags=(\[[^\]]*\]|[\w,\-]+))?\s*$", line)
        if m:
            if cur: cells.append(cur)
            tags = re.findall(r"[\w\-]+", m.group(2) or "")  # tags=checks,x or tags=["checks", "x"]
            cur = {"md": bool(m.group(1)), "tags": tags, "lines": []}
            continue
        if line.startswith("# %%"):
            sys.exit(f"{src}: cannot read the cell marker {line!r}: use '# %%', '# %% [markdown]' or '# %% tags=checks'")
        if cur is None: continue
        cur["lines"].append(line)
    if cur: cells.append(cur)
    nb = nbf.v4.new_notebook()
    for c in cells:
        lines = c["lines"]
        while lines and not lines[0].strip(): lines.pop(0)
        while lines and not lines[-1].strip(): lines.pop()
        if c["md"]:
            body = "\n".join(l[2:] if l.startswith("# ") else ("" if l.strip() == "#" else l) for l in lines)
            cell = nbf.v4.new_markdown_cell(body)
        else:
            cell = nbf.v4.new_code_cell("\n".join(lines))
        if c["tags"]: cell.metadata["tags"] = c["tags"]
        cell.pop("id", None)
        nb.cells.append(cell)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.nbformat_minor = 5
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
    nbf.validate(nb)
    with open(dst, "w") as fh:
        nbf.write(nb, fh)

if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
