"""What every ingest job (and the explorer) shares: which model made a lake's rows, and the forward passes.

Kept light: nothing here imports torch when the package is imported.
"""
from __future__ import annotations

from .reconstruct import Reconstruction, reconstruct_sample, stored_reconstruction

__all__ = ["Reconstruction", "reconstruct_sample", "stored_reconstruction"]
