"""The schema page (docs/lake.md) documents every group and table that `lake.layout` declares.

Every ``*_spec`` of `lake.layout` is built with placeholder names (tests/docs/layout_specs.py);
its group pattern (``activations/<layer>``, ``analysis/pca/<key>``, ...) must head a section of
the page, and that section must name each of its columns and fixed attributes in backticks
and each of its dimensions. Every top-level group and every analysis kind must have a section.
So adding a table, a column or a group to the layout without documenting it fails here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from layout_specs import Documentable, analysis_kinds, specs, top_level_groups

from tests.conftest import REPO

SCHEMA = REPO / "docs" / "lake.md"
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Section:
    level: int
    heading: str
    text: str  # the heading and everything below it up to the next heading of the same or a higher level

    @property
    def names(self) -> list[str]:
        """The code spans of the heading: the group patterns it is about."""
        return CODE.findall(self.heading)


def sections(markdown: str) -> list[Section]:
    lines = markdown.split("\n")
    heads: list[tuple[int, int, str]] = []
    fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        match = None if fence else HEADING.match(line)
        if match:
            heads.append((i, len(match.group(1)), match.group(2)))
    found = []
    for n, (start, level, heading) in enumerate(heads):
        end = next((s for s, lv, _ in heads[n + 1:] if lv <= level), len(lines))
        found.append(Section(level, heading, "\n".join(lines[start:end])))
    return found


def section_of(pattern: str, all_sections: list[Section]) -> Section | None:
    """The section headed by `pattern`, else one headed by a prefix of it that names it in its text."""
    for section in all_sections:
        if pattern in section.names:
            return section
    for section in all_sections:
        if any(pattern.startswith(name) for name in section.names) and f"`{pattern}`" in section.text:
            return section
    return None


def missing(entry: Documentable, section: Section) -> list[str]:
    """What the section does not say about the table."""
    gaps = [f"column `{c}`" for c in sorted(entry.columns) if f"`{c}`" not in section.text]
    gaps += [f"dimension {d}" for d in sorted(entry.dims) if not re.search(rf"(?<![\w.]){re.escape(d)}(?![\w])", section.text)]
    gaps += [f"attribute `{a}`" for a in sorted(entry.attributes) if f"`{a}`" not in section.text]
    return gaps


@pytest.fixture(scope="module")
def page() -> list[Section]:
    return sections(SCHEMA.read_text())


ENTRIES = specs()


def test_the_layout_declares_the_tables_we_know_of():
    # A sanity check of the spec builder itself: it sees the tables of every concept module.
    patterns = {e.pattern for e in ENTRIES}
    assert {"samples", "activations/<layer>", "analysis/pca/<key>", "t2i/<name>/samples", "models", "lineage"} <= patterns
    assert all("zz" not in p and "None" not in p for p in patterns), patterns


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.pattern for e in ENTRIES])
def test_every_table_is_documented(entry: Documentable, page: list[Section]):
    section = section_of(entry.pattern, page)
    assert section is not None, (f"docs/lake.md has no section for `{entry.pattern}` (lake.layout.{entry.builder}); "
                                 f"add a heading naming it, with its columns, dimensions and attributes")
    gaps = missing(entry, section)
    assert not gaps, f"docs/lake.md's section '{section.heading}' does not document: {', '.join(gaps)}"


@pytest.mark.parametrize("group", top_level_groups() + analysis_kinds())
def test_every_group_has_a_section(group: str, page: list[Section]):
    assert any(name == group or name.startswith(group + "/") for s in page for name in s.names), \
        f"docs/lake.md has no section about the group `{group}`"


def test_the_check_fails_for_what_the_page_does_not_document(page: list[Section]):
    # The checker can fail: an undocumented table, and a documented one with an extra column.
    assert section_of("nonexistent/<layer>", page) is None
    samples = next(e for e in ENTRIES if e.pattern == "samples")
    extra = Documentable("test", "samples", samples.dims | {"wavelength"}, samples.columns | {"loudness"},
                         samples.attributes | {"colour_space"})
    section = section_of("samples", page)
    assert section is not None
    assert missing(extra, section) == ["column `loudness`", "dimension wavelength", "attribute `colour_space`"]
