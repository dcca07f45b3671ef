"""Sphinx configuration of the DMD2 Visualizer documentation (`make docs`; the test suite: tests/docs/).

Everything that could go stale is generated at build time from the code:
- the CLI reference (cli.md) from the real argparse parsers (sphinx-argparse);
- the Python API pages (api/) from the docstrings (autodoc);
- the notebook page from examples/reading_the_lake.ipynb (myst-nb), executed against the
  lake named by $DMD2VIZ_LAKE (`make docs` builds the CLI demo lake and sets it).
The screenshots under docs/images/ are made by docs/_tools/screenshots.py (also `make docs`).

No network is used: no intersphinx, no CDN; pydata-sphinx-theme ships its assets.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the five packages, importable without installing the project
sys.path.insert(0, str(DOCS / "_ext"))  # cli_parsers, plain_docstrings: our own small helpers

project = "DMD2 Visualizer"
author = "DMD2 Visualizer authors"
copyright = "DMD2 Visualizer authors"  # noqa: A001 (Sphinx's own name for it)

extensions = [
    "myst_nb",  # Markdown pages (it loads myst_parser) and the executed notebook
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinxarg.ext",  # sphinx-argparse: the CLI reference from our parsers
    "plain_docstrings",  # docs/_ext: our plain-text docstrings rendered as such
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
# Code blocks without a language (diagrams, docstring examples) are shown as they are, not guessed at.
highlight_language = "none"
exclude_patterns = ["_build", "_tools", "_ext", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# --- MyST ----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # `[text](page.md#a-heading)` links, checked by the build

# --- the notebook ------------------------------------------------------------------------
# `make docs` runs it against the CLI demo lake; the test suite turns execution off
# (`-D nb_execution_mode=off`) because tests/examples/test_notebook.py already executes it.
LAKE_ENV = "DMD2VIZ_LAKE"
_lake = os.environ.get(LAKE_ENV, "")
# Sphinx reads this file from docs/: a relative path is taken from where the build was started.
_lake_path = Path(os.environ.get("PWD", ROOT), _lake) if _lake else None
if _lake_path is not None and (_lake_path / "zarr.json").is_file():
    os.environ[LAKE_ENV] = str(_lake_path.resolve())  # the kernel runs in docs/notebooks/ and inherits it
    nb_execution_mode = "force"
else:
    nb_execution_mode = "off"
    print(f"docs: ${LAKE_ENV} names no lake, so the notebook is rendered without running it ({_lake or 'unset'})")
nb_execution_timeout = 600
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_merge_streams = True

# --- autodoc -------------------------------------------------------------------------------
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_mock_imports: list[str] = []

# --- warnings are errors (`-W --keep-going -n` in `make docs` and the test) ----------------
nitpicky = True
# Without intersphinx (no network at build time) the types of other libraries cannot resolve;
# our own references must. Type hints name these libraries' classes, and a few standard ones.
_EXTERNAL = (
    r"(np|numpy|xr|xarray|pd|pandas|torch|nn|zarr|dask|da|umap|sklearn|pynndescent|PIL|diffusers|transformers|"
    r"argparse|pathlib|os|collections|collections\.abc|typing|concurrent|threading|subprocess|io|types|enum|"
    r"dataclasses|datetime|logging|numpy\.typing|npt|contextlib|abc)\..*"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    (r"py:class", r"(Path|Any|Callable|Iterator|Iterable|Sequence|Mapping|Hashable|TypeVar|T|K|Self|"
                  r"ArrayLike|NDArray|DTypeLike|Generator|Literal|ClassVar|Protocol|Enum|IntEnum|TextIO|BinaryIO|"
                  r"Tensor|ndarray|device|dtype|Module|Dataset|DataArray|DataFrame|Array|Group)"),
    (r"py:(class|obj)", r"(int|float|str|bool|bytes|list|dict|tuple|set|frozenset|None|object|type)"),
    # Type hints that name our own internal types (the argument objects of a job, a step's base
    # class, ...): the API pages document the public functions, not every module behind them.
    (r"py:class", r"(lake|ingest|models|analysis|explorer)\.[\w.]+"),
    (r"py:class", r"(ModelSpec|RunModel|Selection|ProbeModel|T2IFamily|EditSample|Parent|Passes|ProbeRequest|"
                  r"InputFile|ArrayInfo|ModelRecord|KnnGraph|Step|PromptList|PromptSpec|T2IModelSpec|T2ISettings)"),
]


def _signature(app, what, name, obj, options, signature, return_annotation):  # noqa: ANN001, ANN202 (Sphinx's hook)
    """A dataclass field's `default_factory` shows as `<factory>`, which is no Python and no valid
    signature for Sphinx to parse: show it as `...`."""
    if signature and "<factory>" in signature:
        signature = signature.replace("<factory>", "...")
    return signature, return_annotation


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-process-signature", _signature)


# --- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "DMD2 Visualizer"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 4,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False
