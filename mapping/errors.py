"""The compiler's two error types, each carrying one line for the command line."""

from __future__ import annotations

__all__ = ["CompileError", "ImageError"]


class CompileError(ValueError):
    """A model, option or defect map the compiler cannot handle (names the culprit)."""


class ImageError(ValueError):
    """An image on disk that is incomplete, corrupted or inconsistent with its manifest."""
