"""Masking secret values, and the ways they are commonly encoded, in text and JSON-able data.

A value is replaced by ``***`` wherever it appears as itself, as base64 (standard and url-safe,
with and without padding, and inside a longer base64 text such as an HTTP Basic ``user:pass``
credential), URL-encoded, JSON-escaped or HTML-escaped. URL encoders differ in which characters
they escape (httpx leaves ``!`` or ``(`` of a path as they are and escapes a space; ``quote``
escapes all three; a server may write ``%2f`` for ``%2F``), so a value of at most
``MAX_PERCENT_PATTERN`` characters with a character outside RFC 3986's unreserved ones is
matched with each such character as itself or percent-encoded, in either case (a space also as
``+``). The longest match wins, so a value that contains another is masked whole.

A value shorter than ``MIN_EMBEDDED_LENGTH`` (4) characters is still masked, but only where a
whole string equals it: masking every ``ab`` inside other text would garble every output while
protecting nothing, since so short a secret is guessable anyway.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from multi_task_orchestrator.engine.secrets import redact_data

MASK = "***"
MIN_EMBEDDED_LENGTH = 4
# A base64 run shorter than this, cut out of a longer base64 text, would match by chance.
MIN_BASE64_CORE = 8
# Longer values (a browser session's storage state) are matched only in the fixed forms.
MAX_PERCENT_PATTERN = 4096
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Redactor:
    """Built once from the secret values; ``redact`` and ``redact_data`` are then cheap."""

    def __init__(self, values: Iterable[str]) -> None:
        distinct = {value for value in values if value}
        self._whole_only = frozenset(
            value for value in distinct if len(value) < MIN_EMBEDDED_LENGTH
        )
        embedded = distinct - self._whole_only
        forms: set[str] = set()
        for value in embedded:
            forms.update(encoded_forms(value))
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        escapable = sorted(
            (value for value in embedded if len(value) <= MAX_PERCENT_PATTERN),
            key=lambda value: (-len(value), value),
        )
        alternatives = [
            *(percent_pattern(value) for value in escapable if not _UNRESERVED.issuperset(value)),
            *map(re.escape, ordered),
        ]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self) -> bool:
        return self._pattern is not None or bool(self._whole_only)

    def redact(self, text: str) -> str:
        """``text`` with every secret value and its encoded forms replaced by ``***``."""
        if text in self._whole_only:
            return MASK
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def redact_data(self, data: Any) -> Any:
        """A copy of JSON-able ``data`` with every string (dict keys included) redacted, at
        any depth (walked without recursion)."""
        return redact_data(data, self.redact)


def encoded_forms(value: str) -> set[str]:
    """``value`` and each encoding of it that ``Redactor`` masks."""
    raw = value.encode("utf-8")
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),  # an HTML page quoting what it was sent
        html.escape(value, quote=False),
        html.escape(value).replace("&#x27;", "&#39;"),
    }
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.add(encoded)
        forms.add(encoded.rstrip("="))
    forms.update(_embedded_base64(raw))
    return {form for form in forms if len(form) >= MIN_EMBEDDED_LENGTH}


def percent_pattern(value: str) -> str:
    """A regular expression matching ``value`` with each character outside RFC 3986's
    unreserved ones as itself or percent-encoded (UTF-8, hex digits in either case), and a
    space also as ``+``: every way a URL encoder may have written it."""
    parts = []
    for character in value:
        if character in _UNRESERVED:
            parts.append(re.escape(character))
            continue
        escaped = "".join(
            f"%{_hex_digit(byte >> 4)}{_hex_digit(byte & 15)}" for byte in character.encode("utf-8")
        )
        plus = r"|\+" if character == " " else ""
        parts.append(f"(?:{re.escape(character)}|{escaped}{plus})")
    return "".join(parts)


def _hex_digit(digit: int) -> str:
    upper = "0123456789ABCDEF"[digit]
    return upper if digit < 10 else f"[{upper}{upper.lower()}]"


def _embedded_base64(raw: bytes) -> set[str]:
    """The part of ``raw``'s base64 that is the same wherever it sits in a longer text.

    Base64 turns each 3 bytes into 4 characters, so inside ``prefix + raw + suffix`` the
    characters that depend on ``raw`` alone depend on where ``raw`` starts modulo 3. For each of
    the three alignments, encode the whole 3-byte groups that lie inside ``raw``.
    """
    cores: set[str] = set()
    for offset in range(3):
        skip = (3 - offset) % 3
        usable = (len(raw) - skip) // 3 * 3
        if usable <= 0:
            continue
        chunk = raw[skip : skip + usable]
        for encoded in (base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)):
            if len(encoded) >= MIN_BASE64_CORE:
                cores.add(encoded.decode())
    return cores
