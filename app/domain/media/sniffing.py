"""What a file really is, judged by its content (never by its name)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image as PillowImage
from PIL import UnidentifiedImageError

from app.domain.media.exif import exif_facts
from app.errors import NotAnImage

# Formats with a reliable signature that browsers or common tools display. Formats Pillow
# guesses from weak signatures (TGA, for one) would let arbitrary bytes pass as images.
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "ICO", "JPEG2000", "PPM", "AVIF")


@dataclass(frozen=True, kw_only=True)
class MediaFacts:
    content_type: str
    width: int | None
    height: int | None
    exif: dict[str, Any] | None = None  # app/domain/media/exif.py


def sniff(source: BinaryIO) -> MediaFacts:
    """Identify the image from its header, then rewind `source`. NotAnImage otherwise.

    Only the header is read; pixels are never decoded, so this is cheap even for huge files
    and a decompression bomb is harmless here (hence the silenced warning).
    """
    start = source.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PillowImage.DecompressionBombWarning)
            with PillowImage.open(source, formats=ACCEPTED_FORMATS) as picture:
                image_format = picture.format or ""
                width, height = picture.size
                exif = exif_facts(picture)
    except (UnidentifiedImageError, PillowImage.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise NotAnImage("The file is not a supported image (judged by its content, not its name).") from None
    finally:
        source.seek(start)
    content_type = PillowImage.MIME.get(image_format, "application/octet-stream")
    return MediaFacts(content_type=content_type, width=width, height=height, exif=exif)
