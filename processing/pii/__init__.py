"""PII and secret detection: detectors yield typed spans, one step turns them into placeholders.

Pure functions on plain strings (no Ray, no I/O), so the same :func:`scrub` serves curated text,
titles, bios and any generated text. Detectors (see ``detectors.py`` and ``addresses.py``):

- phone numbers: ``phonenumbers`` (libphonenumber) validates candidates per region;
- cards, IBANs, national ids: ``python-stdnum`` checksums (Luhn, mod 97, SSN, HETU, NIR, ...);
- secrets: the regex detectors of ``detect-secrets`` (cloud keys, tokens, private keys, passwords
  in URLs);
- emails, IP addresses (checked by ``ipaddress``), @handles and street addresses: patterns.

Overlapping spans are resolved longest first (ties: the more specific kind of :data:`KINDS`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from processing.pii.addresses import find_addresses
from processing.pii.detectors import find_cards, find_emails, find_handles, find_ibans, find_ids, find_ips, find_phones, find_secrets, number_runs, Span

# Most specific first: the order breaks ties between spans of equal length.
KINDS: tuple[str, ...] = ("secret", "iban", "card", "ssn", "national_id", "email", "ip", "phone",
                          "address", "handle")
PLACEHOLDERS: dict[str, str] = {
    "secret": "[SECRET]", "iban": "[IBAN]", "card": "[CARD]", "ssn": "[SSN]", "national_id": "[ID_NUMBER]",
    "email": "[EMAIL]", "ip": "[IP]", "phone": "[PHONE]", "address": "[ADDRESS]", "handle": "[USER]",
}
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "FI", "HU")
_RANK = {k: i for i, k in enumerate(KINDS)}
_NUMERIC = frozenset({"ip", "iban", "ssn", "national_id", "card", "phone"})


@lru_cache(maxsize=64)
def _settings(kinds: tuple[str, ...], region_hint: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """The kind set (checked) and the regions to try, computed once per argument pair."""
    ks = frozenset(kinds)
    if not ks <= _RANK.keys():
        raise ValueError(f"unknown PII kinds: {sorted(ks - _RANK.keys())}; known: {list(KINDS)}")
    if not region_hint:
        return ks, DEFAULT_REGIONS
    hint = region_hint.upper()
    return ks, (hint,) + tuple(r for r in DEFAULT_REGIONS if r != hint)


# Every detector needs one of these in the text (detect() checks them one by one): an ASCII digit
# (numbers, house numbers, tokens), "@" (emails, handles, URL passwords), "u/" (handles), a private key
# header, or a French street word (the addresses without a digit). A test checks it.
TRIGGERS = (r"[0-9@]|u/|PRIVATE KEY|PuTTY|rue |boulevard |chemin |impasse |quai |avenue d|allée ")


def may_contain(texts: pa.Array) -> np.ndarray:
    """Indices of the texts that hold a trigger (the others have no PII: detect() finds nothing)."""
    hit = pc.fill_null(pc.match_substring_regex(texts, TRIGGERS), False)
    return np.flatnonzero(hit.to_numpy(zero_copy_only=False))


def detect(text: str, kinds: Iterable[str] = KINDS, region_hint: str | None = None) -> list[Span]:
    """All spans of the given kinds found in text (overlaps not yet resolved)."""
    ks, regions = _settings(kinds if isinstance(kinds, tuple) else tuple(kinds), region_hint)
    spans: list[Span] = []
    # Without an ASCII digit only emails, handles, private keys, URL passwords and French street
    # names can be there (ten substring tests cost less than one regex pass).
    digits = any(d in text for d in "0123456789")
    if "secret" in ks:
        spans += find_secrets(text, digits)
    if "email" in ks:
        spans += find_emails(text)
    if "handle" in ks:
        spans += find_handles(text)
    if "address" in ks:
        spans += find_addresses(text, digits)
    runs = number_runs(text) if digits and ks & _NUMERIC else []
    if "ip" in ks and digits:
        spans += find_ips(text, runs)
    if runs:
        if "iban" in ks:
            spans += find_ibans(text, runs)
        if ks & {"ssn", "national_id"}:
            spans += [s for s in find_ids(text, runs) if s.kind in ks]
        if "card" in ks:
            spans += find_cards(text, runs)
        if "phone" in ks:
            spans += find_phones(text, regions, runs)
    return spans

def resolve(spans: list[Span]) -> list[Span]:
    """Non-overlapping spans sorted by start: longest wins, then the more specific kind."""
    chosen: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start - s.end, _RANK[s.kind], s.start)):
        if all(s.end <= c.start or s.start >= c.end for c in chosen):
            chosen.append(s)
    return sorted(chosen, key=lambda s: s.start)


def replace(text: str, spans: list[Span]) -> tuple[str, dict[str, int]]:
    """Replace resolved spans by their placeholders; return (text, counts per kind)."""
    if not spans:
        return text, {}
    out, counts, pos = [], {}, 0
    for s in spans:
        out += [text[pos:s.start], PLACEHOLDERS[s.kind]]
        counts[s.kind] = counts.get(s.kind, 0) + 1
        pos = s.end
    out.append(text[pos:])
    return "".join(out), counts


def scrub(text: str, region_hint: str | None = None, kinds: Iterable[str] = KINDS) -> tuple[str, dict[str, int]]:
    """Replace PII and secrets in any text with typed placeholders; return (text, counts per kind).

    region_hint: an ISO country code tried first for national phone formats (else US, GB, DE, FR,
    FI, HU in that order)."""
    if not text:
        return text, {}
    return replace(text, resolve(detect(text, kinds, region_hint)))
