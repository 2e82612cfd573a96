"""The content types sellers may upload, and how each is recognised from its first bytes.

A signed ``Content-Type`` only constrains the header the browser sends, never the bytes
(SEC-6: "no content-type validation post-upload"): a file declared ``image/png``
can hold HTML or a script, which a browser may execute when it is served from PixEcom's
domain. So every allowed type has a magic-byte signature here, and an upload whose first
bytes do not carry the signature of its declared type is refused.

Nothing here knows R2 or boto3, so core can use it (or take it over) as it is.
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

#: How many leading bytes :func:`sniff_content_type` needs to recognise every allowed type.
SNIFF_LENGTH: Final = 64

_PNG: Final = b"\x89PNG\r\n\x1a\n"
_JPEG: Final = b"\xff\xd8\xff"
_GIF: Final = (b"GIF87a", b"GIF89a")
_PDF: Final = b"%PDF-"
#: ISO base media (``ftyp`` box) major brands that are MP4 video. HEIF/HEIC images
#: (``heic``, ``mif1``) and QuickTime (``qt  ``) share the box but are other types.
MP4_BRANDS: Final = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso3",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"avc1",
        b"dash",
        b"M4V ",
        b"MSNV",
        b"mmp4",
    }
)


def _is_png(head: bytes) -> bool:
    return head.startswith(_PNG)


def _is_jpeg(head: bytes) -> bool:
    return head.startswith(_JPEG)


def _is_gif(head: bytes) -> bool:
    return head.startswith(_GIF)


def _is_webp(head: bytes) -> bool:
    # RIFF container: "RIFF", 4 bytes of size, then the form type "WEBP"
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _is_mp4(head: bytes) -> bool:
    # the first box is "ftyp" (bytes 4-8) and names the major brand (bytes 8-12)
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in MP4_BRANDS


def _is_pdf(head: bytes) -> bool:
    return head.startswith(_PDF)


#: Every content type sellers may upload, with the test its first bytes must pass.
SIGNATURES: Final[Mapping[str, Callable[[bytes], bool]]] = MappingProxyType(
    {
        "image/png": _is_png,
        "image/jpeg": _is_jpeg,
        "image/gif": _is_gif,
        "image/webp": _is_webp,
        "video/mp4": _is_mp4,
        "application/pdf": _is_pdf,
    }
)

#: The allowed content types, in a stable order (settings default, error messages).
ALLOWED_CONTENT_TYPES: Final = tuple(SIGNATURES)

_MARKUP_LEADS: Final = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")


def normalise_content_type(value: str) -> str:
    """The media type alone, lower case: ``"Image/PNG; x=1"`` → ``"image/png"``."""
    return value.split(";", 1)[0].strip().lower()


def sniff_content_type(head: bytes) -> str | None:
    """Name the type the bytes are, from their start.

    :param head: the object's first bytes (:data:`SNIFF_LENGTH` are enough).
    :returns: one of :data:`ALLOWED_CONTENT_TYPES`; ``"text/html"`` for anything that starts
        like markup (HTML, SVG, XML, after an optional byte-order mark and whitespace), the
        classic disguise of a script as an image; ``None`` for anything else.
    """
    for content_type, matches in SIGNATURES.items():
        if matches(head):
            return content_type
    text = head
    for lead in _MARKUP_LEADS:
        text = text.removeprefix(lead)
    if text.lstrip(b" \t\r\n\x00").startswith(b"<"):
        return "text/html"
    return None
