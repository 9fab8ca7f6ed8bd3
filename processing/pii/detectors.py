"""Detectors of structured identifiers and secrets; each returns typed :class:`Span` objects.

Candidates are found by shape (cheap, gated regexes); libraries decide: ``phonenumbers`` for
phone numbers, ``python-stdnum`` for checksummed numbers, ``detect-secrets`` for secrets.
"""
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from itertools import compress
from typing import NamedTuple

import phonenumbers
from detect_secrets.plugins import aws, azure_storage_key, basic_auth, discord, github_token, gitlab_token, jwt, mailchimp, npm, openai, private_key, pypi_token, sendgrid, slack, square_oauth, stripe, telegram_token, twilio
from stdnum import iban, luhn
from stdnum.de import idnr
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.us import ssn


class Span(NamedTuple):
    start: int
    end: int
    kind: str


def _context(text: str, start: int, words: re.Pattern, width: int = 40) -> bool:
    """A context word in the `width` characters before start."""
    return words.search(text, max(0, start - width), start) is not None


# ---------------------------------------------------------------- email, handles, IP
# local part via lookahead + backreference: matched atomically, no backtracking over long words
_EMAIL = re.compile(r"(?<![\w.%+-])(?=(?P<local>[\w.%+-]+))(?P=local)"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
AT_HANDLE = r"@(?<![\w@.]@)(?!\d{1,2}(?::\d\d)?\s?(?:[ap]m)?\b)\w{1,30}\b(?!@)"
U_HANDLE = "|".join(rf"{p}(?<![\w/]{p})[A-Za-z0-9_-]{{3,20}}(?![\w-])" for p in ("/u/", "u/"))
_HANDLE = re.compile(f"{AT_HANDLE}|{U_HANDLE}")
_H = "[0-9a-fA-F]"
# Patterns start with a character class and check the character before it afterwards: `re` then
# skips ahead to candidate characters instead of trying every position.
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w-]|\.\d)")
_IPV6 = re.compile(
    rf"(?<![\w:])(?=[\w:]*\d)(?=[\w:]*{_H}{{3}})(?:(?:{_H}{{1,4}}:){{7}}{_H}{{1,4}}"
    rf"|(?:{_H}{{1,4}}:){{1,7}}:(?:{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})?)(?![\w:])")


def find_emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)] if "@" in text else []


def find_handles(text: str) -> list[Span]:
    if "@" not in text and "u/" not in text:
        return []
    return [Span(m.start(), m.end(), "handle") for m in _HANDLE.finditer(text)]


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def find_ips(text: str, runs: list[tuple[int, int]] | None = None) -> list[Span]:
    runs = number_runs(text) if runs is None else runs
    dotted = [r for r in runs if "." in text[r[0]:r[1]]]
    out = [Span(m.start(), m.end(), "ip") for m in _in_windows(_IPV4, text, windows(dotted, len(text), 4, 4))
           if _is_ip(m.group())]
    if "::" in text or text.count(":") >= 7:
        out += [Span(m.start(), m.end(), "ip") for m in _IPV6.finditer(text) if _is_ip(m.group())]
    return out


# ---------------------------------------------------------------- numbers
# Every IP, phone, card, IBAN and id number has a run of 6+ digits and separators: one pass finds
# them, and the slower patterns only run around them.
_NUM_RUN = re.compile(r"\d[\d ().+/-]{4,}\d")


def number_runs(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _NUM_RUN.finditer(text)]


def windows(runs: list[tuple[int, int]], n: int, before: int, after: int) -> list[tuple[int, int]]:
    """Merged stretches of a text of length n around runs."""
    out: list[tuple[int, int]] = []
    for start, end in runs:
        a, b = max(0, start - before), min(n, end + after)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _in_windows(rx: re.Pattern, text: str, windows: list[tuple[int, int]]):
    for a, b in windows:
        yield from rx.finditer(text, a, b)
_PHONE_WORDS = re.compile(
    r"(?i:phone|\btel\b|\btel\.|call|text|\bsms\b|mobile|\bcell|number|\bno\.|\bnr\.?|contact|reach|whats ?app"
    r"|\bfax\b|\bring\b|dial|telefon|handy|\bruf(?:e|en|t)?\b|rufnummer|nummer|anruf|t[ée]l[ée]phone|portable|num[ée]ro|appel"
    r"|puhelin|\bpuh\b|soita|numero|telefonsz[áa]m|h[íi]vj|\bmobil|\bszám)")
# "order number 0612345678": a number after these words is not a phone, whatever comes before
_NOT_PHONE_WORDS = re.compile(
    r"(?i:order|tracking|model|serial|case|part|item|invoice|reference|\bref\b|confirmation|ticket|flight"
    r"|policy|product|isbn|asin|sku|upc|account|page|version|\blot\b|batch|receipt|claim|customer)")
# Groups of digits with one separator between them; "(0)", "(06)", one "/" after an area code.
_PHONE = re.compile(
    r"(?<![\w$€£¥.,/+-])(?:(?P<intl>\+|\b00|\(\+\d{1,3}\))\s?)?(?:\(\d{1,5}\)[ .-]?/?\s?)?\d{1,15}"
    r"(?:[ .-]\d{1,4})?(?: ?/ ?\d{1,10})?(?:(?:[ .-]?\(\d{1,4}\)[ .-]?|[ .-])\d{1,10}){0,5}"
    r"(?P<ext>\s?(?:x|ext\.?|#)\s?\d{1,5})?(?![\w/%]|[.,-]\d|:\d)")
_NANP = re.compile(r"(?:1[ .-]?)?(?:\([2-9]\d\d\)[ .-]?|[2-9]\d\d(?P<s>[ .-]))\d{3}(?(s)(?P=s)|[ .-])\d{4}")
_DATE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2(?:\d{4}|\d{2})")
_DIGIT = re.compile(r"\d")
_CUT = re.compile(r"(?<=\d)[ .-](?=\d)")


@lru_cache(maxsize=4096)
def _phone_verdict(number: str, regions: tuple[str, ...]) -> str:
    """'valid' (a valid number of one region), 'possible' (a plausible length) or ''."""
    best = ""
    for region in ((None,) if number.startswith("+") else regions):
        try:
            n = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            return "valid"
        if phonenumbers.is_possible_number(n):
            best = "possible"
    return best


def _prefixes(core: str) -> list[str]:
    """core, and core without a last group of 1-2 digits set off by another separator than the
    one before it ("(555) 123-4567 2" -> "(555) 123-4567"; "555 123 4567 2019" is one number)."""
    cuts = list(_CUT.finditer(core))
    if len(cuts) >= 2 and cuts[-1].group() != cuts[-2].group() and len(core) - cuts[-1].end() <= 2:
        return [core, core[:cuts[-1].start()]]
    return [core]


def _phone_strength(core: str, intl: bool, regions: tuple[str, ...]) -> int:
    """2: a phone by itself; 1: a phone after a phone word; 0: not a phone."""
    n = len(_DIGIT.findall(core))
    if not 7 <= n <= 15 or _DATE.fullmatch(core):
        return 0
    if intl:
        number = core.replace("(", "").replace(")", "", 1) if core.startswith("(+") else core
        if core.startswith("00"):
            number = "+" + core[2:].lstrip()
        if n >= 8 and _phone_verdict(number, regions):
            return 2
        if not core.startswith("00"):
            return 0  # "00" may also start a national number: go on
    grouped = not core.isdigit()
    if grouped and _NANP.fullmatch(core):
        return 2
    verdict = _phone_verdict(core, regions)
    if grouped and verdict == "valid" and core.lstrip("(").startswith("0"):
        return 2
    return 1 if verdict and (grouped or n <= 12) else 0  # 13+ bare digits: an order or a barcode


def find_phones(text: str, regions: tuple[str, ...], runs: list[tuple[int, int]] | None = None) -> list[Span]:
    """International numbers (+, 00) of a possible length; national ones written like phones
    (NANP groups, or a trunk prefix 0 and valid in one of `regions` by phonenumbers); and any
    possible number right after a phone word ("call", "Tel.", "puhelin", ...)."""
    out = []
    runs = number_runs(text) if runs is None else runs
    for m in _in_windows(_PHONE, text, windows(runs, len(text), 8, 12)):
        s, intl = m.group(), m.group("intl") is not None
        core = s[:m.start("ext") - m.start()] if m.group("ext") else s
        glued = text[m.end():m.end() + 2]
        if glued[:1] == " " and glued[1:].isdigit() and " " in core and not intl:
            continue  # "555 123 4567 2019": a longer space-grouped number
        cands = _prefixes(core)
        strength = [_phone_strength(c, intl, regions) for c in cands]
        if 2 in strength:
            cand = cands[strength.index(2)]
        elif strength[0] == 1 and _context(text, m.start(), _PHONE_WORDS) and not _context(
                text, m.start(), _NOT_PHONE_WORDS, 25):
            cand = cands[0]
        else:
            continue
        out.append(Span(m.start(), m.end() if cand == core else m.start() + len(cand), "phone"))
    return out


# Cards: 12-19 digits, bare or grouped 4-4-4-(1-7) / 4-6-4(5) with one separator.
_CARD = re.compile(r"\d(?<![\w$€£.,/+-]\d)(?:\d{11,18}|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?:(?P=s)\d{1,7})?"
                   r"|\d{3}(?P<a>[ -])\d{6}(?P=a)\d{4,5})(?![\w/]|[.,-]\d| \d)")
_CARD_WORDS = re.compile(r"(?i:card|visa|master|amex|american express|maestro|discover|\bjcb\b|diners|\bcc\b"
                         r"|credit|debit|karte|carte|\bcb\b|kortti|k[áa]rty)")


def find_cards(text: str, runs: list[tuple[int, int]] | None = None) -> list[Span]:
    """Luhn-valid numbers: 13-19 digits starting 2-6 (the major networks) anywhere, any other
    12-19 digit number only after a card word."""
    out = []
    runs = number_runs(text) if runs is None else runs
    for m in _in_windows(_CARD, text, windows(runs, len(text), 2, 2)):
        digits = "".join(_DIGIT.findall(m.group()))
        if len(set(digits)) == 1 or not luhn.is_valid(digits):
            continue
        if (len(digits) >= 13 and digits[0] in "23456") or _context(text, m.start(), _CARD_WORDS):
            out.append(Span(m.start(), m.end(), "card"))
    return out


# National ids: US SSN, FI HETU, FR NIR, GB NINO, DE tax id, HU personal number.
_ID_WORDS = re.compile(r"(?i:\bssn|social security|\bss#|\bid\b|identity|steuer|idnr|insurance|\bnino\b|\bnir\b"
                       r"|s[ée]curit[ée] sociale|hetu|henkil[öo]tunnus|szem[ée]lyi|azonos[íi]t[óo])")
_IDS = re.compile(
    r"(?<![\w$€£.,/+-])(?:(?P<ssn>\d{3}(?P<ss>[- ])\d{2}(?P=ss)\d{4}|\d{9})"
    r"|(?P<hetu>\d{6}[-+A-FU-Y]\d{3}[0-9A-Y])"
    r"|(?P<nir>[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2})"
    r"|(?P<nino>[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"|(?P<idnr>\d{2} ?\d{3} ?\d{3} ?\d{3}))(?![\w/]|[.,-]\d)")  # DE tax id or HU personal number


def _hu_personal(d: str) -> bool:
    """Hungarian személyi szám: sex/century digit, birth date YYMMDD, serial, weighted mod 11."""
    d = d.replace(" ", "")
    if not ("01" <= d[3:5] <= "12" and "01" <= d[5:7] <= "31"):
        return False
    checks = {sum(int(c) * k for c, k in zip(d[:10], w)) % 11 for w in (range(1, 11), range(10, 0, -1))}
    return int(d[10]) in checks  # weights 1..10 before 1997, 10..1 after


def find_ids(text: str, runs: list[tuple[int, int]] | None = None) -> list[Span]:
    """SSN (dashed anywhere, 9 bare digits after an id word), and checksummed national ids."""
    out = []
    runs = number_runs(text) if runs is None else runs
    for m in _in_windows(_IDS, text, windows(runs, len(text), 4, 8)):
        s, kind = m.group(), m.lastgroup
        if kind == "ssn":
            ok = ssn.is_valid(s) and (not s.isdigit() or _context(text, m.start(), _ID_WORDS))
        elif kind == "hetu":
            ok = hetu.is_valid(s)
        elif kind == "nir":
            ok = nir.is_valid(s)
        elif kind == "nino":
            ok = True
        else:
            ok = (idnr.is_valid(s) and _context(text, m.start(), _ID_WORDS)) or _hu_personal(s)
        if ok:
            out.append(Span(m.start(), m.end(), "ssn" if kind == "ssn" else "national_id"))
    return out


# ---------------------------------------------------------------- IBAN
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IBAN_GATE = re.compile(r"[A-Z]{2}\d\d")


def find_ibans(text: str, runs: list[tuple[int, int]] | None = None) -> list[Span]:
    runs = number_runs(text) if runs is None else runs
    wins = [w for w in windows(runs, len(text), 34, 34) if _IBAN_GATE.search(text, *w)]
    return [Span(m.start(), m.end(), "iban") for m in _in_windows(_IBAN, text, wins) if iban.is_valid(m.group())]


# ---------------------------------------------------------------- secrets (detect-secrets plugins)
# Not ArtifactoryDetector: "AP" + 9 letters ("APEXLegends") is prose, and its patterns are slow.
_PLUGINS = (aws.AWSKeyDetector, azure_storage_key.AzureStorageKeyDetector,
            basic_auth.BasicAuthDetector, discord.DiscordBotTokenDetector, github_token.GitHubTokenDetector,
            gitlab_token.GitLabTokenDetector, jwt.JwtTokenDetector, mailchimp.MailchimpDetector, npm.NpmDetector,
            openai.OpenAIDetector, private_key.PrivateKeyDetector, pypi_token.PypiTokenDetector,
            sendgrid.SendGridDetector, slack.SlackDetector, square_oauth.SquareOAuthDetector,
            stripe.StripeDetector, telegram_token.TelegramBotTokenDetector, twilio.TwilioKeyDetector)
_SECRET_RES = tuple(rx for p in _PLUGINS for rx in p.denylist)
# Every pattern above needs a run of 16+ token characters, a PEM/PuTTY header or "://x:y@".
_HAS_DIGIT = re.compile(r"[0-9]")
_TOKEN_TAIL = re.compile(r"[\w/+=-]*(?:\.[\w/+=-]+)*")
_URL_START = re.compile(r"[A-Za-z][\w+.-]*$")
_URL_REST = re.compile(r"[^\s\"'<>]*[^\s\"'<>.,;:!?)]")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|Private-MAC: \w+")


def find_secrets(text: str, digits: bool = True) -> list[Span]:
    """Every match of a detect-secrets denylist pattern (the whole match, without the delimiter
    some patterns include); a private key spans its header to its END line."""
    if "PRIVATE KEY" in text or "PuTTY" in text or ("://" in text and "@" in text):
        wins = [(0, len(text))]
    elif not digits:  # every other pattern needs a token of 16+ characters, nearly always with a digit
        return []
    else:
        tokens = text.split()
        wins, pos = [], 0
        for tok in compress(tokens, map((15).__lt__, map(len, tokens))):  # 16+ characters, filtered in C
            if _HAS_DIGIT.search(tok):  # keys and tokens are random: a digit is all but certain
                i = text.find(tok, pos)
                pos = i + len(tok)
                wins.append((max(0, i - 60), pos))
        if not wins:
            return []
    out = []
    for rx in _SECRET_RES:
        for m in _in_windows(rx, text, wins):
            i, j = m.span()
            while i < j and text[i] in ' \t\n="\'':
                i += 1
            while j > i and text[j - 1] in ' \t\n"':
                j -= 1
            if "PRIVATE KEY" in m.group() or "PuTTY" in m.group():
                k = text.rfind("-----", max(0, i - 6), i)
                i = k if k >= 0 else i
                end = _KEY_END.search(text, j)
                j = end.end() if end else len(text)
            if rx.pattern.startswith("://"):  # a password in a URL: the whole URL goes
                scheme = _URL_START.search(text, max(0, i - 20), i)
                i = scheme.start() if scheme else i
                rest = _URL_REST.match(text, j)
                j = rest.end() if rest else j
            elif "PRIVATE KEY" not in m.group() and "PuTTY" not in m.group():
                j = _TOKEN_TAIL.match(text, j).end()  # a token does not end inside a word
            if j > i:
                out.append(Span(i, j, "secret"))
    return out
