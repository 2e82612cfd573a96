"""Magic bytes: every allowed type is recognised, disguises are not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixecom_r2_storage.content_types import (
    ALLOWED_CONTENT_TYPES,
    SNIFF_LENGTH,
    normalise_content_type,
    sniff_content_type,
)
from r2_support import HTML, SAMPLES


def test_every_allowed_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(ALLOWED_CONTENT_TYPES)


@pytest.mark.parametrize("content_type", sorted(SAMPLES))
def test_each_sample_is_recognised_from_its_first_bytes(content_type: str) -> None:
    assert sniff_content_type(SAMPLES[content_type][:SNIFF_LENGTH]) == content_type


@pytest.mark.parametrize(
    "head",
    [
        HTML,
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"\xef\xbb\xbf  \r\n<html>",  # byte-order mark and whitespace first
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>\x00",  # UTF-16
        b"<?xml version='1.0'?>",
    ],
)
def test_markup_is_named_as_html(head: bytes) -> None:
    assert sniff_content_type(head) == "text/html"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x89PNG",  # a signature cut short
        b"\x89PNG\r\n\x1a",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # a RIFF that is audio, not WebP
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # HEIF image in an ISO box
        b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00",  # QuickTime
        b"GIF90a",
        b"%PDF",
        b"MZ\x90\x00",
        b"#!/bin/sh\nrm -rf /",
        b"PK\x03\x04",  # zip (docx, jar …)
    ],
)
def test_other_bytes_are_not_an_allowed_type(head: bytes) -> None:
    assert sniff_content_type(head) not in ALLOWED_CONTENT_TYPES


@pytest.mark.parametrize(
    ("declared", "normalised"),
    [
        ("image/png", "image/png"),
        ("Image/PNG", "image/png"),
        (" video/mp4 ; codecs=x", "video/mp4"),
    ],
)
def test_content_types_are_compared_by_media_type(declared: str, normalised: str) -> None:
    assert normalise_content_type(declared) == normalised


@given(st.binary(max_size=SNIFF_LENGTH))
def test_a_png_signature_is_needed_to_be_a_png(head: bytes) -> None:
    if sniff_content_type(head) == "image/png":
        assert head.startswith(b"\x89PNG\r\n\x1a\n")


@given(st.sampled_from(sorted(SAMPLES)), st.binary(max_size=32))
def test_what_follows_a_signature_does_not_change_the_type(content_type: str, tail: bytes) -> None:
    # sniffing reads the start only: a polyglot (PNG header, HTML after) counts as PNG, which
    # is why objects are served with their stored type and ``nosniff``
    assert sniff_content_type(SAMPLES[content_type][:16] + tail) == content_type
