"""Sphinx extension: our docstrings are plain text; render them as the plain text they are.

The project's docstrings are written for `help()` and editors, not as reStructuredText: code
examples are simply indented, `code` is in single backticks, and text such as ``(N, *shape)``,
``sigma*eps`` or ``name_`` is ordinary text. Parsed as reStructuredText, those would be block
quotes with "unexpected indentation", half-open emphasis and dangling hyperlink references.
On `autodoc-process-docstring` this rewrites each docstring so that it reads the same:

- an indented block after a blank line (4 or more columns deeper than the text before it,
  or deeper at all after a line ending in ``:``) becomes a literal block;
- `x` becomes ``x`` (inline literal), unless it is a role's argument (:func:`x`);
- outside literals, ``*`` that opens no complete emphasis, ``|`` and a word-final ``_`` are
  escaped.

Docstrings already in reStructuredText (``::`` blocks, ``**bold**``, ``*emphasis*``, roles)
come through unchanged.
"""
from __future__ import annotations

import re
from typing import Any

_CODE = re.compile(r"(``.+?``|(?<![:`])`[^`\n]+`(?![`_]))")
_EMPHASIS = re.compile(r"\*\*[^*\s][^*\n]*?(?<=\S)\*\*|(?<![\w\\*])\*[^*\s][^*\n]*?(?<=\S)\*(?![\w*])")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _escape_text(text: str) -> str:
    """Escape what reStructuredText would take as markup in plain text (not in code spans)."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _EMPHASIS.sub(keep, text)
    text = re.sub(r"(?<!\\)([*|])", r"\\\1", text)
    text = re.sub(r"(?<=\w)_(?=\W|$)", r"\\_", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)


def rst_line(line: str) -> str:
    """One line of prose: `code` as inline literals, the rest escaped."""
    out = []
    for part in _CODE.split(line):
        if part.startswith("``"):
            out.append(part)
        elif len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append(f"``{part[1:-1]}``")
        else:
            out.append(_escape_text(part))
    return "".join(out)


def _text_indent(lines: list[str], start: int) -> int:
    """Where the text of the paragraph ending before `start` begins (past a list marker)."""
    i = start - 1
    while i > 0 and lines[i - 1].strip():
        i -= 1
    marker = _LIST_ITEM.match(lines[i])
    return marker.end() if marker else _indent(lines[i])


def plain_to_rst(lines: list[str]) -> list[str]:
    """The docstring's lines, rewritten (see the module docstring)."""
    out: list[str] = []
    literal_at: int | None = None  # the indentation a literal block's text sits deeper than
    previous = ""  # the last non-blank line outside literal blocks
    for i, line in enumerate(lines):
        if not line.strip():
            out.append(line)
            continue
        if literal_at is not None:
            if _indent(line) > literal_at:
                out.append(line)
                continue
            literal_at = None
        after_blank = i > 0 and not lines[i - 1].strip()
        if previous and after_blank and not previous.rstrip().endswith("::"):
            base = _text_indent(lines, i - 1) if i > 1 else 0
            deeper = _indent(line) - base
            if deeper >= 4 or (deeper > 0 and previous.rstrip().endswith(":")):
                out[-1:] = ["", "::", ""]  # a lone `::` paragraph: the block below is literal, nothing shows
                out.append(line)
                literal_at = base
                continue
        if previous.rstrip().endswith("::") and after_blank:
            out.append(line)  # already a reStructuredText literal block
            literal_at = _text_indent(lines, i - 1)
            continue
        out.append(rst_line(line))
        previous = line
    return out


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    doc = getattr(obj, "__doc__", None)
    if what == "module" and isinstance(doc, str) and lines:
        # autodoc dedents the lines after the first by their common indentation, which turns a
        # module docstring whose body is all example code into prose; a module's own indentation is 0.
        lines[:] = [line.rstrip() for line in doc.expandtabs().strip("\n").split("\n")] + [""]
    lines[:] = plain_to_rst(lines)


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
