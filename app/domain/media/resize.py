"""A resized copy of an image, made by Pillow: what `?width=` / `?height=` ask for.

The size is given in the image as it is shown, after its EXIF orientation is applied, and an
image is never made larger than it is. `inside` fits the whole image within the box; `cover`
fills the box and crops what overflows, around the centre. JPEG sources are decoded at
a reduced scale straight away (Pillow's `draft`: libjpeg's DCT scaling, 1/2 to 1/8), which
is what makes a thumbnail of a 12-megapixel photo take milliseconds and a few megabytes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import IO, Literal, get_args

from PIL import Image as PillowImage
from PIL import ImageOps, UnidentifiedImageError

from app.domain.media.sniffing import ACCEPTED_FORMATS
from app.errors import BadInput, Unprocessable

Fit = Literal["inside", "cover"]
Format = Literal["jpeg", "webp", "png"]

MAX_SIDE = 4096
DEFAULT_QUALITY = 80
CONTENT_TYPES: dict[Format, str] = {"jpeg": "image/jpeg", "webp": "image/webp", "png": "image/png"}
# EXIF orientations that turn the stored image a quarter: shown width is stored height.
QUARTER_TURNS = frozenset({5, 6, 7, 8})
ORIENTATION = 0x0112
# Anything Pillow raises for a file it cannot decode (truncated, corrupt, unknown).
DECODE_ERRORS = (UnidentifiedImageError, PillowImage.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError)


@dataclass(frozen=True, kw_only=True)
class Resize:
    """What a client asked for; `width` or `height`, or both."""

    width: int | None
    height: int | None
    fit: Fit = "inside"
    format: Format = "jpeg"
    quality: int = DEFAULT_QUALITY

    @property
    def name(self) -> str:
        """Unique per request shape, and a valid file name: the key of its cached copy."""
        return f"w{self.width or 0}-h{self.height or 0}-{self.fit}-q{self.quality}.{self.format}"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def parse_resize(
    *, width: int | None, height: int | None, fit: str | None, format: str | None, quality: int | None
) -> Resize | None:
    """The resize asked for, or None when none is (no width, height or option given)."""
    if width is None and height is None:
        if fit is not None or format is not None or quality is not None:
            raise BadInput("fit, format and quality apply to a resized copy: give width or height too.")
        return None
    for name, value in (("width", width), ("height", height)):
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise BadInput(f"{name} must be between 1 and {MAX_SIDE} pixels, not {value}.")
    if fit is not None and fit not in get_args(Fit):
        raise BadInput(f"fit must be one of {', '.join(get_args(Fit))}, not {fit!r}.")
    if format is not None and format not in get_args(Format):
        raise BadInput(f"format must be one of {', '.join(get_args(Format))}, not {format!r}.")
    if quality is not None and not 1 <= quality <= 100:
        raise BadInput(f"quality must be between 1 and 100, not {quality}.")
    return Resize(
        width=width,
        height=height,
        fit=fit or "inside",  # type: ignore[arg-type]  # checked above
        format=format or "jpeg",  # type: ignore[arg-type]
        quality=quality or DEFAULT_QUALITY,
    )


@dataclass(frozen=True, kw_only=True)
class Resized:
    width: int
    height: int
    decoded_pixels: int  # how many the decoder produced (fewer than the image has, for JPEG)


def render(source: IO[bytes], resize: Resize, target: IO[bytes], *, max_pixels: int) -> Resized:
    """Write the resized copy of the image in `source` to `target`. Blocking: run in a thread.

    Unprocessable when `source` is not an image Pillow can decode, or when decoding it would
    take more than `max_pixels` (the bound on the memory one resize uses).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PillowImage.DecompressionBombWarning)  # bounded below
            with PillowImage.open(source, formats=ACCEPTED_FORMATS) as picture:
                return _render(picture, resize, target, max_pixels=max_pixels)
    except DECODE_ERRORS:
        raise Unprocessable("The image's file cannot be decoded, so no resized copy can be made of it.") from None


def _render(picture: PillowImage.Image, resize: Resize, target: IO[bytes], *, max_pixels: int) -> Resized:
    turned = picture.getexif().get(ORIENTATION) in QUARTER_TURNS
    shown = picture.size[::-1] if turned else picture.size
    size, covering = _sizes(shown, resize)
    # The smallest decode that still covers what is needed, in the stored image's frame.
    needed = covering[::-1] if turned else covering
    if picture.format == "JPEG":
        picture.draft("RGB" if picture.mode != "CMYK" else "CMYK", needed)
    decoded = picture.size[0] * picture.size[1]
    if decoded > max_pixels:
        raise Unprocessable(
            f"The image has {decoded:,} pixels, more than the {max_pixels:,} a resized copy can be made from."
        )
    picture.load()  # of an animation, the first frame
    ImageOps.exif_transpose(picture, in_place=True)  # no copy when there is nothing to turn
    image = _for_format(picture, resize.format)
    if resize.fit == "cover" and resize.width and resize.height:
        image = ImageOps.fit(image, size, method=PillowImage.Resampling.BICUBIC)
    elif image.size != size:
        image = image.resize(size, PillowImage.Resampling.BICUBIC, reducing_gap=2.0)
    options: dict[str, object] = {"quality": resize.quality} if resize.format != "png" else {"compress_level": 6}
    image.save(target, format=resize.format.upper(), **options)
    return Resized(width=image.size[0], height=image.size[1], decoded_pixels=decoded)


def _sizes(shown: tuple[int, int], resize: Resize) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the size of the copy, the size a decode must at least have to make it), never upscaled."""
    width, height = shown
    wide = resize.width / width if resize.width else math.inf
    high = resize.height / height if resize.height else math.inf
    if resize.fit == "cover" and resize.width and resize.height:
        # The box, shrunk (same proportions) until the image covers it without enlarging.
        shrink = min(1.0, width / resize.width, height / resize.height)
        box = (max(1, round(resize.width * shrink)), max(1, round(resize.height * shrink)))
        scale = max(box[0] / width, box[1] / height)
        return box, (math.ceil(width * scale), math.ceil(height * scale))
    scale = min(wide, high, 1.0)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return size, size


def _for_format(image: PillowImage.Image, format: Format) -> PillowImage.Image:
    """Pixels the encoder takes: JPEG has no transparency (shown over white), PNG and WebP keep it."""
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if transparent:
        image = image.convert("RGBA")
        if format != "jpeg":
            return image
        flat = PillowImage.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    return image if image.mode in ("RGB", "L") else image.convert("RGB")
