"""Sniffing an upload reads its header only: no pixel is decoded, however large the image."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image as PillowImage
from PIL.ExifTags import Base

from app.domain.media.sniffing import sniff

REPO_ROOT = Path(__file__).resolve().parents[2]


def blank_png(width: int, height: int) -> bytes:
    """An RGB PNG of zeros, written row by row: never the whole picture in memory."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte, then the pixels
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


SNIFF_AND_REPORT_GROWTH = """
import resource, sys
from pathlib import Path
from app.domain.media.sniffing import sniff
with open(sys.argv[1], "rb") as source:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    facts = sniff(source)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(facts.width, facts.height, facts.content_type, (after - before) // 1024)
"""


def test_a_huge_png_is_sniffed_without_decoding_its_pixels(tmp_path: Path) -> None:
    # 12,000 x 12,000 RGB: 432 MB once decoded, 420 KB as a file. A fresh process, so that its
    # peak memory is this sniff's alone.
    path = tmp_path / "huge.png"
    path.write_bytes(blank_png(12_000, 12_000))
    assert path.stat().st_size < 1024 * 1024
    run = subprocess.run(
        [sys.executable, "-c", SNIFF_AND_REPORT_GROWTH, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    width, height, content_type, growth_mb = run.stdout.split()
    assert (width, height, content_type) == ("12000", "12000", "image/png")
    assert int(growth_mb) < 50


def test_a_pngs_exif_before_its_pixels_is_read() -> None:
    tags = PillowImage.Exif()
    tags[Base.Make] = "Nikon"
    tags[Base.Orientation] = 3
    buffer = io.BytesIO()
    PillowImage.new("RGB", (40, 30)).save(buffer, "PNG", exif=tags)  # Pillow writes eXIf before IDAT
    buffer.seek(0)

    facts = sniff(buffer)

    assert facts.exif == {"make": "Nikon", "orientation": 3}
    assert (facts.width, facts.height, facts.content_type) == (40, 30, "image/png")
    assert buffer.tell() == 0  # rewound for the write that follows
