"""The member pages' colours meet WCAG 2.1 contrast, and the form reader refuses what no browser sends."""

from __future__ import annotations

import re

import pytest

from chalicelib.domain.errors import BadRequest, PayloadTooLarge
from chalicelib.entrypoints import member_pages
from chalicelib.entrypoints.member_pages import CONTRAST_PAIRS, PALETTE, read_form


def luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_is_wcags() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(("foreground", "background", "least"), CONTRAST_PAIRS)
def test_every_colour_pair_has_enough_contrast(foreground: str, background: str, least: float) -> None:
    assert contrast(PALETTE[foreground], PALETTE[background]) >= least


def test_the_pages_use_no_colour_outside_the_checked_palette() -> None:
    used = set(re.findall(r"#[0-9a-fA-F]{6}\b", member_pages._CSS))
    assert used
    assert used <= set(PALETTE.values())
    checked = {name for pair in CONTRAST_PAIRS for name in pair[:2]}
    assert checked == set(PALETTE)


def test_a_form_reads_one_value_per_field() -> None:
    assert read_form(b"token=abc&password=p%C3%A4ss+word") == {"token": "abc", "password": "päss word"}
    assert read_form(b"") == {}


@pytest.mark.parametrize("body", [b"token=a&token=b", b"password=\xff", b"&".join([b"a=1"] * 11)])
def test_a_form_no_browser_sends_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        read_form(body)


def test_an_oversized_form_is_refused_before_it_is_read() -> None:
    with pytest.raises(PayloadTooLarge):
        read_form(b"password=" + b"x" * 9000)
