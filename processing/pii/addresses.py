"""Street addresses: house number + street patterns for en_US/en_GB, de_DE, fr_FR, fi_FI, hu_HU,
with an optional unit (Apt., Suite, Flat) and a following postal code + city.

No maintained library finds addresses in free text (libpostal parses a given address and needs
a C library and model data), so these are patterns over the street-type words of each locale
(USPS Publication 28 suffixes, German, French, Finnish and Hungarian street types).
"""
from __future__ import annotations

import re

from processing.pii.detectors import Span

_UP = "A-ZÄÖÜÀÂÇÉÈÊËÎÏÔÛÙÁÍÓÚŐŰÅ"
_LO = "a-zäöüßàâçéèêëîïôûùáíóúőűå"
_CAP = rf"[{_UP}][{_LO}'’-]*"  # a capitalised word
_CAPH = rf"[{_UP}][{_LO}'’]*(?:-[{_UP}{_LO}][{_LO}'’]*)*"  # "Aubert-les-Bains", "Karl-Otto-Grein"
# USPS Publication 28 street suffixes (full names and the usual abbreviations).
_EN_SUFFIX = (
    "Alley|Aly|Avenue|Ave|Av|Bay|Beach|Bend|Bluffs?|Boulevard|Blvd|Branch|Bridge|Brooks?|Burgs?|Bypass|Byp|Camp"
    "|Canyon|Cape|Causeway|Center|Centre|Circles?|Cir|Cliffs?|Close|Club|Commons?|Corners?|Course|Courts?|Ct"
    "|Coves?|Creek|Crescent|Cres|Crest|Crossing|Crossroad|Curve|Dale|Dam|Divide|Drives?|Dr|Estates?|Expressway"
    "|Expy|Extensions?|Ext|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|Forges?|Forks?|Fort|Freeway|Fwy|Gardens?"
    "|Gateway|Glens?|Greens?|Groves?|Harbors?|Haven|Heights|Hts|Highway|Hwy|Hills?|Hollow|Inlet|Islands?|Isle"
    "|Junctions?|Jct|Keys?|Knolls?|Lakes?|Land|Landing|Lane|Ln|Lights?|Loaf|Locks?|Lodge|Loop|Mall|Manors?"
    "|Meadows?|Mews|Mill|Mills|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|Overpass|Park|Parkways?|Pkwy"
    "|Pass|Passage|Path|Pike|Pines?|Place|Pl|Plains?|Plaza|Points?|Ports?|Prairie|Radial|Ramp|Ranch|Rapids?"
    "|Rest|Ridges?|River|Road|Roads|Rd|Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Sq"
    "|Station|Stravenue|Stream|Streets?|St|Summit|Terrace|Ter|Throughway|Trace|Track|Trafficway|Trail|Trl"
    "|Trailer|Tunnel|Turnpike|Underpass|Unions?|Valleys?|Via|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall"
    "|Way|Ways|Wells?")
_STOP = ("The|To|For|Of|In|On|At|By|And|Or|An?|My|Your|His|Her|Our|Their|With|From|About|Best|Top|Ways"
         "|Tips|Things|Reasons|Days|Years|Hours|Minutes|Miles|Times|Steps|Supreme|Is|Are|Was|It|I|Please")
_COUNT_WORDS = frozenset("the all my our your his her their these those top chapter only just first last "
                         "nearly almost over under than both every another about around some".split())
_NAME = rf"(?!(?:{_STOP})\b)(?:{_CAP}|\d{{1,3}}(?:st|nd|rd|th))"
_UNIT = r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Room|Rm|#)\.?[ \t]*#?[ \t]*[A-Za-z0-9-]{1,6}\b)?"
_NUM = r"\d(?<![\w$€£.,/-]\d)\d{0,5}[A-Za-z]?"
_NL = r"(?:,[ \t]*|[ \t]*\n[ \t]*)"  # the next line of an address, or a comma
# a city, state and ZIP code (US) or a town and postcode (GB) after the street
_EN_TAIL = (rf"(?:{_NL}(?:{_CAP}[ \t]){{0,3}}{_CAP},?[ \t]+[A-Z]{{2}}[ \t]+\d{{5}}(?:-\d{{4}})?"
            rf"|(?:{_NL}{_CAP}(?:[ \t]{_CAP}){{0,2}}){{0,2}}{_NL}[A-Z]{{1,2}}\d[A-Z\d]?[ \t]?\d[A-Z]{{2}}\b)?")
# the common street types in any case ("10 Downing street"), the rest capitalised ("3 Main points")
_EN_TYPE = (r"(?:(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace"
            rf"|way|parkway|pkwy|highway|hwy|circle|cir|square|sq)|{_EN_SUFFIX})\b")
_EN = (rf"{_NUM}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:{_NAME}[ \t]+){{1,3}}{_EN_TYPE}(?:\.(?=[,\n]|\s+[a-z\d]))?"
       rf"(?:[ \t]+(?:[NSEW]|NE|NW|SE|SW)\b)?{_UNIT}{_EN_TAIL}")
# GB "Flat 2\nConor Pines", "Studio 47S, Hughes Crescent": a unit before the street name.
_GB_UNIT = (rf"(?:Flat|Studio|Apartment)[ \t]+\d{{1,4}}[A-Za-z]?(?:{_NL}|[ \t]+)"
            rf"(?:{_CAP}[ \t]+){{1,3}}{_EN_TYPE}{_EN_TAIL}")
# street types of each locale: the end of the street's word (fi, de) or the word itself (hu)
_FI_END = ("katu", "tie", "kuja", "polku", "bulevardi", "raitti", "väylä", "kaari", "rinne", "aukio", "tori", "ranta",
           "puistikko", "piha", "kaarre")
_DE_END = ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm", "ufer", "chaussee", "steig",
           "pfad")
_HU_TYPES = ("utca", "u.", "út", "útja", "tér", "tere", "körút", "krt.", "köz", "sor", "sétány", "fasor", "rakpart",
             "lépcső", "dűlő", "liget")


def _alternatives(words: tuple[str, ...]) -> str:
    return "(?:" + "|".join(map(re.escape, words)) + ")"


_DE_SUFFIX = _alternatives(_DE_END)
_HOUSE = r"\d{1,4}(?:[ \t]?[a-z]\b)?(?:[ \t]?[-/][ \t]?\d{1,4}[a-z]?)?"
_POST_CITY = rf"(?:,[ \t]*|[ \t]*\n[ \t]*)(?:[A-Z]-)?\d{{4,5}}[ \t]+{_CAPH}(?:[ \t]{_CAPH})?"
_DE = (rf"(?:{_CAPH}[ \t])?(?:[{_UP}][{_LO}]*-)*[{_UP}][{_LO}]*-?(?i:{_DE_SUFFIX})(?:[ \t]|(?<=\.))[ \t]*{_HOUSE}"
       rf"(?![\d:%]|[.,]\d)(?:{_POST_CITY})?")
_FR = (rf"\d{{1,4}}(?:[ \t]?(?:bis|ter|[A-Z]))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|chemin|impasse|allée|quai"
       rf"|place|route|cours|passage|square)[ \t]+(?:(?:de la|de l'|du|des|de|d'|la|le|les)[ \t]*)?{_CAP}"
       rf"(?:[ \t]{_CAP}){{0,2}}(?:{_POST_CITY})?"
       # no house number: only the unmistakably French street types
       rf"|(?<![\w-])(?:(?:rue|boulevard|impasse|allée|chemin|quai)[ \t]+|avenue[ \t]+(?=d[eu' ]))"
       rf"(?:(?:de la|de l'|du|des|de|d')[ \t]*)?{_CAP}(?:[ \t]{_CAP}){{0,2}}(?:{_POST_CITY})?")
_FI_SUFFIX = _alternatives(_FI_END)
_FI = (rf"(?:\d{{1,5}}[ \t])?(?:(?:{_CAP}[ \t]){{0,2}}[{_UP}]?[{_LO}]+{_FI_SUFFIX}|(?:{_CAP}[ \t]){{1,2}}{_FI_SUFFIX})"
       rf"[ \t]+\d{{1,4}}[a-z]?"
       rf"(?:[ \t]?[A-Z][ \t]?\d{{1,3}})?(?![\d:%]|[.,]\d){_UNIT}(?:{_POST_CITY})?")
_HU_TYPE = _alternatives(_HU_TYPES)
_HU = (rf"{_CAPH}(?:[ \t](?:{_CAPH}|[{_LO}]+)){{0,2}}[ \t]{_HU_TYPE}[ \t]+\d{{1,4}}(?:/[A-Za-z])?\.?"
       rf"(?![\d:%]|[.,]\d)(?:{_POST_CITY})?")
_EN_RE, _GB_UNIT_RE = re.compile(_EN), re.compile(_GB_UNIT)  # start with a digit / "Flat": `re` skips ahead
_FI_RE, _DE_RE, _HU_RE, _FR_RE = (re.compile(rf"(?<![\w-])(?:{p})") for p in (_FI, _DE, _HU, _FR))
_FR_AFTER = re.compile(r"(?:[ \t]?(?:bis|ter|[A-Z]))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|chemin|impasse|allée"
                       r"|quai|place|route|cours|passage|square)\b")
_HOUSE_NUM = re.compile(r"\d{1,6}")  # house number candidates: not after a letter, digit or _NOT_BEFORE_NUMBER
_NOT_BEFORE_NUMBER = frozenset("$€£.,/-_+#")
_ENGLISH_RING = re.compile(r"(?i:(?:sp|st|b|wr|off|herr|ear|key)ring|\w*(?:er|ur|or|ar|ir)ing)$")


def _valid(text: str, m: re.Match) -> bool:
    """Counts ("all 9 Supreme Court justices") and English words in -ring ("Spring 2019") are not
    addresses."""
    before = text[max(0, m.start() - 12):m.start()].split()
    if before and before[-1].lower() in _COUNT_WORDS and m.group()[:1].isdigit():
        return False
    words = m.group().split()
    for i, w in enumerate(words[:-1]):
        if w.lower().endswith("ring") and words[i + 1][:1].isdigit():
            return _ENGLISH_RING.search(w) is None and not re.match(r"(?:19|20)\d\d$", words[i + 1])
    return True


def _locale_patterns(text: str, start: int, end: int) -> list[re.Pattern]:
    """The locale patterns that can hold the house number text[start:end]: by the street word
    before it (fi, de, hu) or the street type after it (fr)."""
    out = []
    if start and text[start - 1] in " \t":
        prev = text[max(0, start - 30):start - 1].rsplit(None, 1)
        w = prev[-1].lower() if prev else ""
        if w.endswith(_FI_END):
            out.append(_FI_RE)
        if w.endswith(_DE_END):
            out.append(_DE_RE)
        if w in _HU_TYPES:
            out.append(_HU_RE)
    if _FR_AFTER.match(text, end):
        out.append(_FR_RE)
    return out


def find_addresses(text: str, digits: bool = True) -> list[Span]:
    """Patterns are tried only at house number candidates (and "Flat", "rue" ... when present);
    digits=False (the text has no ASCII digit) leaves only French street names to look for."""
    found = []
    if ("rue " in text or "boulevard " in text or "chemin " in text or "impasse " in text or "quai " in text
            or "avenue d" in text or "allée " in text):
        found += _FR_RE.finditer(text)
    if not digits:
        return [Span(m.start(), m.end(), "address") for m in found]
    if "Flat " in text or "Studio " in text or "Apartment " in text:
        found += _GB_UNIT_RE.finditer(text)
    for num in _HOUSE_NUM.finditer(text):
        n, end = num.span()
        if n and (text[n - 1].isalnum() or text[n - 1] in _NOT_BEFORE_NUMBER):
            continue
        nxt = text[end:end + 3]  # en: "12 Main", "221B Baker"; a capital or digit after the space
        if nxt[:1] in (" ", "\t") and (nxt[1:2].isupper() or nxt[1:2].isdigit()) or nxt[:1].isalpha():
            en = _EN_RE.match(text, n)
            if en:
                found.append(en)
        for rx in _locale_patterns(text, n, end):
            for m in rx.finditer(text, max(0, n - 80), min(len(text), n + 90)):
                if m.start() <= n < m.end():
                    found.append(m)
    spans = {Span(m.start(), m.end(), "address") for m in found if _valid(text, m)}
    return sorted(spans)
