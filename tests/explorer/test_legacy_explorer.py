"""The explorer shows a lake made by an earlier main (tests/fixtures/legacy_lake_8dd3ecd.tar.gz) without an error."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import open_app


def test_the_explorer_draws_the_old_lake(legacy_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(legacy_lake, monkeypatch)
    assert at.get("vega_lite_chart"), "no scatter drawn"
    at = open_app(legacy_lake, monkeypatch, query={"emb": "dmd2-sdxl-4step.mid_block.attentions.0@sigma1.61289/umap2d-n15-d0.1-euclidean-s42"})
    assert at.get("vega_lite_chart"), "no scatter drawn for the text-to-image key"
