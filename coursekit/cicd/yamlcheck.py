"""YAML read key by key, so that a mistake is reported as "this key, on this line, should be...".

:class:`Checker` turns YAML into plain Python values while remembering the line of every key
(as a path: ``phases.build.commands[0]``); its checks (:meth:`~Checker.mapping`,
:meth:`~Checker.text_list`, :meth:`~Checker.yes_no`) raise the caller's error class with the
path, the line and a fix. Every scalar is kept as the text that was written (``1.10`` stays
``"1.10"``, ``yes`` stays ``"yes"``), ``null`` and empty values become None, and a key that
appears twice in one mapping is an error. Used by :mod:`coursekit.cicd.build.spec` (lesson
``08-ci-cd``); nothing in it is specific to CodeBuild.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable


def kind(value: Any) -> str:
    """What a value is, in words: ``empty``, ``a mapping``, ``a list``, ``the single value 'x'``."""
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"the single value {value!r}"


def quoted(text: str) -> str:
    """``text`` as a quoted YAML scalar (single quotes unless it holds one)."""
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Checker:
    """Reads one YAML document and checks it; ``error(problem, fix, key, line)`` builds the exception."""

    def __init__(self, source: str, error: Callable[..., Exception], owner: str = "the schema",
                 document: str = "the document"):
        self.source, self.error, self.owner, self.document = source, error, owner, document
        self.lines: dict[str, int] = {}
        self.warnings: list[str] = []

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}, line {line}: " if line else f"{self.source}: "

    def fail(self, key: str, problem: str, fix: str):
        raise self.error(f"{self.where(key)}{problem}", fix, key, self.lines.get(key))

    def load(self, text: str) -> Any:
        """The document as plain values (None when empty); malformed YAML raises with its line and column."""
        import yaml

        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(exc, "problem", None) or str(exc)
            hint = ("indent with spaces, never tabs" if "'\\t'" in what or "tab" in what else
                    "a value that contains ': ' (colon, space) must be in quotes" if "mapping values" in what else
                    "check the indentation and the quotes on that line")
            raise self.error(f"{self.source}{at}: the YAML is malformed: {what}", hint, "",
                             mark.line + 1 if mark else None) from None
        return None if node is None else self._plain(node, "")

    def _plain(self, node: Any, path: str) -> Any:
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return None if node.tag.endswith(":null") and node.style is None else node.value
        if isinstance(node, yaml.SequenceNode):
            return [self._plain(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.fail(path, f"a key of {path or self.document} is not a name", "keys are plain words")
            sub = f"{path}.{knode.value}" if path else knode.value
            self.lines[sub] = knode.start_mark.line + 1
            if knode.value in out:
                self.fail(sub, f"{sub} appears twice", "keep one of them (YAML would silently use the last)")
            out[knode.value] = self._plain(vnode, sub)
        return out

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None, *,
                ignored: dict[str, str] | None = None, noun: str = "key", fix: str = "") -> dict:
        """``value`` must be a mapping whose keys are in ``allowed`` (None: any); keys in ``ignored`` get a warning."""
        name = key or self.document
        if not isinstance(value, dict):
            self.fail(key, f"{name} must be a mapping (`name: value` lines), but it is {kind(value)}",
                      fix or f"indent the keys of {name} under it")
        for k in value:
            if allowed is not None and k not in allowed:
                near = difflib.get_close_matches(k, allowed, n=1)
                where = "here" if key else "at the top"
                self.fail(f"{key}.{k}" if key else k, f"{(key + '.') if key else ''}{k} is not a {noun} "
                          f"{self.owner} knows{'' if noun != 'key' else ' ' + where}",
                          (f"did you mean {near[0]!r}? " if near else "") + f"allowed: {', '.join(allowed)}")
            if ignored and k in ignored:
                self.warnings.append(f"{(key + '.') if key else ''}{k} is ignored: {ignored[k]}")
        return value

    def text_list(self, value: Any, key: str, what: str = "commands") -> tuple[str, ...]:
        """``value`` must be a list of non-empty texts (``what`` is plural: "commands", "paths")."""
        one = what[:-1]
        if not isinstance(value, list):
            self.fail(key, f"{key} must be a list of {what}, one per line starting with '- ', but it is "
                           f"{kind(value)}", f"write it as\n  {key.rsplit('.', 1)[-1]}:\n    - first\n    - second")
        for i, item in enumerate(value):
            if isinstance(item, dict):
                k = next(iter(item), "")
                self.fail(f"{key}[{i}]", f"{key}[{i}] is a YAML mapping ({k}: ...), not a {one}: "
                                         "a colon followed by a space starts a mapping in YAML",
                          f"put the whole item in quotes: - {quoted(f'{k}: {item[k]}')}")
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{key}[{i}]", f"{key}[{i}] is {kind(item)}, not a {one}", f"write the {one} as text")
        return tuple(value)

    def yes_no(self, value: Any, key: str) -> bool:
        word = str(value).strip().lower()
        if word in ("yes", "true", "on"):
            return True
        if word in ("no", "false", "off"):
            return False
        self.fail(key, f"{key} must be yes or no, not {value!r}", f"write {key.rsplit('.', 1)[-1]}: yes (or no)")
