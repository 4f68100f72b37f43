"""The one XML escaper: text and attribute values for every XML document we write
(VOTable, UWS, VOSI, examples). Characters XML 1.0 cannot carry become U+FFFD.

>>> xml_text("a < b & c"), xml_attr('say "hi"')
('a &lt; b &amp; c', 'say &quot;hi&quot;')
"""

from __future__ import annotations

import re

__all__ = ["ILLEGAL_XML", "quoted_attr", "xml_attr", "xml_text"]

ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters XML 1.0 cannot carry (replaced by U+FFFD)."""


def xml_attr(value: object) -> str:
    """Escape a value for a double-quoted XML attribute (newlines and tabs survive normalization)."""
    s = ILLEGAL_XML.sub("\ufffd", str(value))
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def xml_text(value: object) -> str:
    """Escape a value for XML element content."""
    s = ILLEGAL_XML.sub("\ufffd", str(value))
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def quoted_attr(value: object) -> str:
    """:func:`xml_attr` in double quotes, ready to follow ``name=``."""
    return f'"{xml_attr(value)}"'
