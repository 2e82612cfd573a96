"""Content types from magic bytes: a declared Content-Type is a claim, the bytes are proof.

A presigned URL can pin the Content-Type header, not what the bytes are (S3's presigning rule), so
after an upload the first bytes are read and must match the declared type; an HTML page
or script uploaded as ``image/png`` is rejected.
"""

from __future__ import annotations

#: Bytes needed to recognise every allowed type.
SNIFF_BYTES = 16

ALLOWED_CONTENT_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "application/pdf"}
)


def sniff(prefix: bytes) -> str | None:
    """The allowed content type the bytes are, or ``None`` when they are none of them."""
    if prefix.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if prefix.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if prefix.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "image/webp"
    if prefix[4:8] == b"ftyp":
        return "video/mp4"
    if prefix.startswith(b"%PDF-"):
        return "application/pdf"
    return None
