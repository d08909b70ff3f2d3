"""Generated images, so tests need no binary files of their own."""

from __future__ import annotations

import io

from PIL import Image


def make_image(
    width: int = 32, height: int = 24, *, format: str = "PNG", color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=format)
    return buffer.getvalue()
