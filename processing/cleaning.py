"""Text cleaning and PII scrubbing for raw user posts (pure functions: no Ray, no I/O).

Follows the HumanLLM reference ``utils.clean_data``. :func:`clean_text` runs three steps:

1. normalise (the length baseline; re-encoding is not "removal"): unescape valid HTML entities
   (two passes, for double-escaped dumps), NFKC, drop control/zero-width characters, turn markdown
   quote markers (``> `` at line start) into plain text, collapse whitespace (max one blank line).
2. clean (counted as removal): leftover entities, literal ``\\xNN``/``\\uNNNN`` escapes, HTML tags
   and comments (block tags become line breaks), URLs (markdown links keep their text), emoji,
   optional @mentions; whitespace is collapsed again. More than ``max_removed_fraction`` removed
   drops the field.
3. scrub PII and secrets into typed placeholders (:mod:`processing.pii`, :data:`PLACEHOLDERS`).
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

import pyarrow as pa

from processing import pii
from processing.pii.detectors import AT_HANDLE, U_HANDLE

ALL_PII_KINDS: tuple[str, ...] = pii.KINDS
PLACEHOLDERS = pii.PLACEHOLDERS


@dataclass(frozen=True)
class CleaningOptions:
    remove_urls: bool = True
    remove_html: bool = True
    remove_emoji: bool = True
    remove_escapes: bool = True
    remove_mentions: bool = False  # False: kept, and the PII step turns them into [USER]
    max_removed_fraction: float = 0.5
    scrub_pii: bool = True
    pii_kinds: tuple[str, ...] = ALL_PII_KINDS
    region_hint: str | None = None  # ISO country tried first for national phone formats


@dataclass(frozen=True)
class CleanResult:
    text: str  # cleaned + scrubbed text ("" when dropped)
    removed_fraction: float  # 1 - len(after cleaning, before PII) / len(normalised original)
    dropped: bool  # cleaning removed more than max_removed_fraction
    pii_counts: dict[str, int]  # placeholders inserted per kind (only non-zero kinds)


# ---------------------------------------------------------------- normalisation / cleaning regexes
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u200b\u200e\u200f"
                      "\u202a-\u202e\u2060-\u2064\ufeff\ufffd]")
_WS = re.compile(r"\s(?:(?<! )|(?=\s))\s*")  # whitespace runs other than one plain space
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")
_BLOCK_TAGS = "br|p|div|li|ul|ol|tr|table|h[1-6]|hr|blockquote|pre"
_INLINE_TAGS = ("a|b|i|u|s|em|strong|span|img|font|small|big|sub|sup|code|del|ins|strike|td|th"
                "|tbody|thead|iframe|video|source|html|head|body|meta|link|input|label|tt|kbd|mark"
                "|abbr|cite|q|wbr|section|article|header|footer|nav|figure|center|script|style")
_TAG = re.compile(rf"<!--.*?-->|</?(?:({_BLOCK_TAGS})|{_INLINE_TAGS}|[a-z]+:[a-z]+)"
                  r"(?:\s[^<>]*)?/?>", re.I | re.S)  # known tags only: "a < b", "<3" are text
# Raw URLs: one alternative per leading literal (h H w W) so `re` skips ahead with a charset scan.
_URL_BODY = (r"(?:[^\s()<>\[\]\"']|\([^\s()<>]*\))*"  # balanced (...) kept: wiki/Foo_(bar)
             r"(?:\([^\s()<>]*\)|[^\s()<>\[\]\"'!.,;:?*])")  # trailing punctuation is not URL
_RAW_URL = "|".join(rf"{c}(?<![\w@.]{c})(?i:{rest}){_URL_BODY}"
                    for c, rest in zip("hHwW", ("ttps?://",) * 2 + (r"ww\.",) * 2))
_RAW_URL_RE = re.compile(_RAW_URL)
_MD_LINK = r"\[([^\[\]\n]{0,500})\]\((?:[^()\s]|\([^()\s]*\))*\)"  # [text](url): group 1 is kept
_URL = re.compile(f"{_MD_LINK}|{_RAW_URL}")
_PAIRS = {"(": ")", "<": ">", '"': '"', "'": "'"}
# Emoji blocks (NFKC has already run: enclosed letters such as Ⓜ were folded to text), keycap,
# variation selectors, tag characters; ZWJ only inside a sequence. ♭♮♯ (U+266D-F) are kept.
_E = ("\U0001F000-\U0001FAFF\u2600-\u266C\u2670-\u27BF\u2B05-\u2B07\u2B1B\u2B1C\u2B50\u2B55"
      "\u231A\u231B\u2328\u23CF\u23E9-\u23F3\u23F8-\u23FA\uFE0E\uFE0F\u20E3\U000E0020-\U000E007F")
_EMOJI = re.compile(f"[{_E}][{_E}]*(?:\u200d[{_E}]+)*")
_MENTION = re.compile(f"{AT_HANDLE}|{U_HANDLE}")

def scrub_pii(text: str, kinds: Iterable[str] = ALL_PII_KINDS,
              region_hint: str | None = None) -> tuple[str, dict[str, int]]:
    """Replace PII of the given kinds with typed placeholders; return (text, counts per kind)."""
    return pii.scrub(text, region_hint, kinds)


# ---------------------------------------------------------------- cleaning
def _unescape_entity(m: re.Match) -> str:
    s = html.unescape(m.group())
    return m.group() if s == "\ufffd" else s  # invalid references stay: removed as leftovers


def _collapse(t: str) -> str:
    if "  " not in t and t.isprintable():  # only single plain spaces (isprintable: no \n \t ...)
        return t.strip()
    # a run holding 0 / 1 / 2+ newlines becomes " " / "\n" / "\n\n"
    return _WS.sub(lambda m: "\n\n"[:m.group().count("\n")] or " ", t).strip()


def _url_repl(m: re.Match) -> str:  # URLs become "\0" markers, resolved by _close_url_gaps
    keep = m.group(1)
    return "\0" if keep is None else _RAW_URL_RE.sub("\0", keep)


def _close_url_gaps(t: str) -> str:
    """Drop wrappers around removed URLs ("(URL)", "<URL>") and the space before punctuation."""
    parts = t.split("\0")
    for i in range(len(parts) - 1):
        left, right = parts[i], parts[i + 1]
        if left and right and _PAIRS.get(left[-1]) == right[0]:
            left, right = left[:-1], right[1:]
        if right and right[0] in ")]>.,;:!?'\"":
            left = left.rstrip(" \t")
        parts[i], parts[i + 1] = left, right
    return "".join(parts)


def _normalise(text: str) -> str:
    for _ in range(2):  # two passes for double-escaped dumps: "&amp;gt;" -> "&gt;" -> ">"
        if "&" in text:
            text = _ENTITY.sub(_unescape_entity, text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if not text.isprintable() or "\ufffd" in text:  # control and format characters are not
        text = _CONTROL.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if ">" in text:
        text = _QUOTE.sub("", text)
    return _collapse(text)


def _clean(text: str | None, opts: CleaningOptions) -> CleanResult:
    """Steps 1 and 2 (normalise, clean, drop-if-mostly-removed): no PII scrubbed yet."""
    base = _normalise(text) if text else ""
    if not base:
        return CleanResult("", 0.0, False, {})
    t = base
    if "&" in t:
        t = _ENTITY.sub("", t)
    if opts.remove_escapes and "\\" in t:
        t = _ESCAPE.sub("", t)
    if opts.remove_html and "<" in t:
        t = _TAG.sub(lambda m: "\n" if m.group(1) else "", t)  # block tags end a line
    if opts.remove_urls and ("://" in t or "ww." in t or "WW." in t or "](" in t):
        t = _URL.sub(_url_repl, t)
        if "\0" in t:
            t = _close_url_gaps(t)
    if opts.remove_emoji and not t.isascii():
        t = _EMOJI.sub("", t)
    if opts.remove_mentions and ("@" in t or "u/" in t):
        t = _MENTION.sub("", t)
    if len(t) != len(base):  # every rule only shrinks the text
        t = _collapse(t)
    frac = max(0.0, 1.0 - len(t) / len(base))
    if frac > opts.max_removed_fraction:
        return CleanResult("", frac, True, {})
    return CleanResult(t, frac, False, {})


def _scrubbed(r: CleanResult, opts: CleaningOptions) -> CleanResult:
    text, counts = scrub_pii(r.text, opts.pii_kinds, opts.region_hint)
    return CleanResult(text, r.removed_fraction, False, counts)


def clean_text(text: str | None, opts: CleaningOptions = CleaningOptions()) -> CleanResult:
    """Normalise, clean, drop-if-mostly-removed, then scrub PII (see module docstring)."""
    r = _clean(text, opts)
    return _scrubbed(r, opts) if opts.scrub_pii and r.text else r


def clean_column(texts: pa.Array | pa.ChunkedArray | list[str | None],
                 opts: CleaningOptions = CleaningOptions(), pii_counts: dict[str, int] | None = None
                 ) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Vectorised over a column: returns (text: string, removed_fraction: float32, dropped: bool,
    pii_total: int32). Null inputs stay null in ``text`` (0.0 / False / 0 elsewhere). Placeholders
    per kind are added to ``pii_counts`` when given. Only the texts :func:`pii.may_contain` flags (one
    RE2 pass over the column) go through the PII detectors: clean_text's result for every text."""
    values = texts.to_pylist() if isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts
    rows = [None if v is None else _clean(v, opts) for v in values]
    if opts.scrub_pii:
        flagged = pii.may_contain(pa.array([r.text if r else None for r in rows], pa.string()))
        for i in flagged:
            rows[i] = _scrubbed(rows[i], opts)
    if pii_counts is not None:
        for r in rows:
            for kind, n in (r.pii_counts.items() if r else ()):
                pii_counts[kind] = pii_counts.get(kind, 0) + n
    return (pa.array([r and r.text for r in rows], pa.string()),
            pa.array([r.removed_fraction if r else 0.0 for r in rows], pa.float32()),
            pa.array([r is not None and r.dropped for r in rows], pa.bool_()),
            pa.array([sum(r.pii_counts.values()) if r else 0 for r in rows], pa.int32()))
