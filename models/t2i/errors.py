"""The one error type of text-to-image loading, in its own module so that `loading` and `lora` (which
loading calls to fuse a LoRA) both import it without importing each other."""

from __future__ import annotations


class T2ILoadError(ValueError):
    """A base folder, UNet checkpoint or LoRA could not be loaded (one-line message naming the path)."""
