"""What the bytes of an image are: content sniffing and dimensions, EXIF, checksums, the
facts of documents written without them, and resized copies (resize, thumbnails)."""
