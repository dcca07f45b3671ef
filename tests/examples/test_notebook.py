"""examples/reading_the_lake.ipynb runs top to bottom against the demo lake (nbclient).

The kernel is ipykernel in this interpreter; the notebook finds the lake through the
DMD2VIZ_LAKE environment variable, which the kernel inherits.
"""

from __future__ import annotations

import ast
import base64
import os

import nbformat
import pytest
import xarray as xr
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import REPO, tree_digest

NOTEBOOK = REPO / "examples" / "reading_the_lake.ipynb"
OUR_PACKAGES = {"lake", "ingest", "models", "analysis", "explorer"}


def execute(lake: os.PathLike, cwd: os.PathLike, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel with DMD2VIZ_LAKE=lake; return it with outputs."""
    monkeypatch.setenv("DMD2VIZ_LAKE", str(lake))
    # An inherited MPLBACKEND=Agg (CI machines set it) would make plt.show() draw nothing.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def text_of(out: dict) -> str:
    return out.get("text") or out.get("data", {}).get("text/plain", "")


# The first test to ask for `cli_demo_lake` waits for the rest of its build (started at collection,
# allowed 2400 s on a busy machine); the notebook itself runs in seconds.
@pytest.mark.timeout(1500)
def test_notebook_runs_on_the_demo_lake_and_draws_figures(cli_demo_lake, tmp_path, monkeypatch):
    before = tree_digest(cli_demo_lake)
    notebook = execute(cli_demo_lake, tmp_path, monkeypatch)

    outs = outputs(notebook)
    assert [out for out in outs if out.output_type == "error"] == []
    pngs = [base64.b64decode(out["data"]["image/png"]) for out in outs
            if out.output_type == "display_data" and "image/png" in out.get("data", {})]
    # Images of one class, activation profiles at two sigmas, the UMAP with thumbnails.
    assert len(pngs) == 3
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000 for png in pngs)

    # What it printed matches the lake read independently.
    text = "\n".join(text_of(out) for out in outs)
    n_samples = xr.open_zarr(cli_demo_lake, group="samples").sizes["sample"]
    assert f"{n_samples} samples" in text
    key = sorted(p.name for p in (cli_demo_lake / "analysis" / "embeddings").iterdir() if p.is_dir())[0]
    embedding = sorted(p.name for p in (cli_demo_lake / "analysis" / "embeddings" / key).iterdir()
                       if p.name.startswith("umap2d"))[0]
    rows = xr.open_zarr(cli_demo_lake, group=f"analysis/embeddings/{key}/{embedding}")["sample_row"].values
    assert f"{key} {embedding} {int((rows >= 0).sum())} rows" in text
    assert tree_digest(cli_demo_lake) == before  # reading never writes


def test_notebook_names_a_missing_lake(tmp_path, monkeypatch):
    missing = tmp_path / "no_lake_here"
    with pytest.raises(CellExecutionError) as error:
        execute(missing, tmp_path, monkeypatch)
    assert f"{missing}: not a lake (no zarr.json)" in str(error.value)


def test_notebook_needs_nothing_from_this_project():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    imported = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
    assert {"xarray", "matplotlib"} <= imported
    assert imported & OUR_PACKAGES == set()


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
