"""Typed reads of the lake tables the explorer shows: the one explorer module that names their columns.

Each reader turns a committed group of the layout (`lake.layout`) into arrays the explorer
uses, so pages and the session ask for what a table holds, never for a column by name.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def read_native(lake: Any, group: str, name: str) -> np.ndarray:
    """A whole column in its stored dtype (ids stay StringDType: hashing and comparing them is vectorised)."""
    return lake.column(group, name, native=True)
