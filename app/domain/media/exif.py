"""The EXIF facts of a photo: capture time, camera, orientation and GPS position.

Read from the header the upload is sniffed from (no pixel is decoded) into the system field
`exif`, never into the user's `data`. Only what is present and sane is kept; a damaged EXIF
block costs the facts, never the upload.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image as PillowImage
from PIL.ExifTags import GPS, IFD, Base
from PIL.PngImagePlugin import PngImageFile

MAX_TEXT = 200  # characters kept of a maker's string


def exif_facts(picture: PillowImage.Image) -> dict[str, Any] | None:
    """`{takenAt, make, model, orientation, gps: {latitude, longitude, altitude}}`, the keys
    that are present; None when the image carries no usable EXIF."""
    try:
        tags = _header_tags(picture)
        if not tags:
            return None
        details = tags.get_ifd(IFD.Exif)
        facts: dict[str, Any] = {
            "takenAt": _time(
                details.get(Base.DateTimeOriginal) or tags.get(Base.DateTime), details.get(Base.OffsetTimeOriginal)
            ),
            "make": _text(tags.get(Base.Make)),
            "model": _text(tags.get(Base.Model)),
            "orientation": _orientation(tags.get(Base.Orientation)),
            "gps": _position(tags.get_ifd(IFD.GPSInfo)),
        }
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for damaged EXIF blocks
        return None
    present = {name: value for name, value in facts.items() if value is not None}
    return present or None


def _header_tags(picture: PillowImage.Image) -> PillowImage.Exif:
    # A PNG may keep its EXIF after its pixels, and Pillow's `PngImageFile.getexif` then decodes
    # every pixel to reach it: a 400 KB PNG of 12,000 x 12,000 took 550 MB and 1.5 s. So a PNG's
    # EXIF is read only from before its pixels, where writers put it (Pillow, exiftool, cameras).
    if isinstance(picture, PngImageFile) and "exif" not in picture.info:
        return PillowImage.Image.getexif(picture)
    return picture.getexif()


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()[:MAX_TEXT]
    return cleaned or None


def _orientation(value: Any) -> int | None:
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _time(value: Any, offset: Any) -> datetime | None:
    """EXIF's `2019:12:24 15:55:20`, in UTC: shifted by `OffsetTimeOriginal` (`+01:00`) when the
    camera recorded it, else taken as UTC already (EXIF 2.2 cameras record no zone)."""
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        try:
            shift = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        except ValueError:
            shift = timedelta()
        moment -= shift if zone[0] == "+" else -shift
    return moment.replace(tzinfo=UTC)


def _position(gps: Any) -> dict[str, float] | None:
    latitude = _degrees(gps.get(GPS.GPSLatitude), gps.get(GPS.GPSLatitudeRef), "S")
    longitude = _degrees(gps.get(GPS.GPSLongitude), gps.get(GPS.GPSLongitudeRef), "W")
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    position = {"latitude": latitude, "longitude": longitude}
    altitude = gps.get(GPS.GPSAltitude)
    if altitude is not None and math.isfinite(float(altitude)):
        below = gps.get(GPS.GPSAltitudeRef) in (1, b"\x01")
        position["altitude"] = round(-float(altitude) if below else float(altitude), 2)
    return position


def _degrees(parts: Any, reference: Any, negative: str) -> float | None:
    """Degrees, minutes and seconds (three rationals) as signed decimal degrees."""
    if not isinstance(parts, tuple) or len(parts) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in parts)
    value = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(value):
        return None
    return round(-value if _text(reference) == negative else value, 7)
