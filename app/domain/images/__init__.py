"""Operations on images: reading their files, uploads, edits, listing and bulk changes."""
