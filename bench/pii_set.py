"""A labelled PII evaluation set, generated at run time with Faker (seeded): identifiers of every
type in six locales (en_US, en_GB, de_DE, fr_FR, fi_FI, hu_HU), inside templates shaped like real
posts, reviews and blog entries, with the character offsets of each identifier recorded.

Also holds the misses quoted in issue 16 verbatim. Secrets (no Faker provider) are drawn from the
seeded RNG in each service's documented token format.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass

from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "fi_FI", "hu_HU")
TYPES = ("email", "phone", "card", "ssn", "national_id", "iban", "ip", "secret", "address")


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, type)
    locale: str


# {x}: the identifier. Shaped like Reddit posts/comments, Amazon reviews and Blogger entries.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "email": (
        "If anyone wants the spreadsheet just email me at {x} and I'll send it over tonight.",
        "Seller never answered. Their support address ({x}) bounces. One star.",
        "Guest post! You can reach the author at {x}.\n\nThanks for reading.",
        "Contact: {x}",
    ),
    "phone": (
        "Lost dog near the park this morning, brown lab, answers to Max. Please call me at {x} if you see him!",
        "Great plumber, fixed our leak in an hour. His number is {x}, tell him I sent you.",
        "Text me on {x} if you want to carpool on Saturday.",
        "The shop's phone: {x}. They open at 9.",
        "Ruf mich an unter {x}, ich bin ab 18 Uhr zu Hause.",
        "Appelez-moi au {x} pour les détails.",
        "Soita numeroon {x} niin sovitaan.",
        "Hívj a {x} számon este.",
        "ok so i finally got a new cell, number's {x} now, old one is dead",
        "WhatsApp {x} for orders, shipping worldwide.",
        "Tel.: {x}",
    ),
    "card": (
        "Somebody charged my card {x} three times for the same order, still waiting on the refund.",
        "Paid with my Visa {x} and the payment went through twice.",
        "ugh I posted a pic of my credit card ({x}) by accident, deleted it right away",
        "Kartennummer {x}, bitte nicht weitergeben.",
        "card number: {x} exp 04/27",
    ),
    "ssn": (
        "Here's my SSN: {x}",
        "The form asks for your social security number ({x}) before anything else.",
        "They sent a letter with my SSN {x} printed on the envelope!!",
    ),
    "national_id": (
        "Pankki kysyi henkilötunnusta {x} puhelimessa, onko tämä normaalia?",
        "Mon numéro de sécurité sociale est {x}, c'est écrit sur la carte.",
        "A személyi számom {x}, ezt kérték a nyomtatványon.",
        "HMRC wants my NI number, it's {x} if that helps anyone check the format.",
    ),
    "iban": (
        "My IBAN is {x}",
        "Send the deposit to {x} and put your name in the reference.",
        "Überweisung bitte an {x}, danke!",
        "RIB / IBAN : {x}",
    ),
    "ip": (
        "My server at {x} keeps dropping connections after the update.",
        "Banned from the game server, my IP was {x} if a mod can check.",
        "ping {x} times out but the router is up",
    ),
    "secret": (
        "Why does my script fail? config: api_key = {x}",
        "Oops, committed {x} to the public repo, rotating it now.",
        "Here is my .env for reference:\n{x}\nwhat am I doing wrong?",
        "Token: {x}",
    ),
    "address": (
        "We finally moved in! New place is {x}, housewarming on Saturday.",
        "Package says delivered to {x} but it's not there. Avoid this seller.",
        "Our little shop is at {x}. Come say hi!",
        "Ship to:\n{x}",
        "Wir wohnen jetzt in der {x}.",
        "Nous habitons au {x} depuis mars.",
        "Asun nyt osoitteessa {x}.",
        "Az új címünk: {x}.",
    ),
}
# Issue 16's quoted misses, each in a post.
QUOTED = (
    ("Here's my SSN: {x}", "460-89-9847", "ssn"),
    ("My IBAN is {x}", "GB59IFUE40226315499137", "iban"),
    ("call me at {x} after work", "60-56-85-91", "phone"),
    ("my number is {x}, text first", "07700 063 966", "phone"),
    ("Phone: {x}", "(37) 788-063", "phone"),
    ("used my card {x} online", "675936625853", "card"),
    ("I live at {x}, third floor.", "6750 Koskikatu 25 Apt. 864", "address"),
)


def _tok(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secret(rng: random.Random) -> str:
    b64 = string.ascii_letters + string.digits + "-_"
    kind = rng.randrange(9)
    if kind == 0:
        return "AKIA" + _tok(rng, 16, string.ascii_uppercase + string.digits)
    if kind == 1:
        return "ghp_" + _tok(rng, 36)
    if kind == 2:
        return f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**11, 10**12)}-{_tok(rng, 24).lower()}"
    if kind == 3:
        return "sk_live_" + _tok(rng, 24)
    if kind == 4:
        return "eyJhbGciOiJIUzI1NiJ9." + _tok(rng, 40, b64) + "." + _tok(rng, 43, b64)
    if kind == 5:
        body = "\n".join(_tok(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(4))
        return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    if kind == 6:
        return f"https://admin:{_tok(rng, 12)}@db.example.com:5432/prod"
    if kind == 7:
        return "glpat-" + _tok(rng, 20, b64)
    return "SK" + _tok(rng, 32, string.hexdigits[:16])


def _card(fake: Faker, rng: random.Random) -> str:
    n = fake.credit_card_number()
    if len(n) == 16 and rng.random() < 0.5:
        sep = rng.choice(" -")
        return sep.join(n[i:i + 4] for i in range(0, 16, 4))
    return n


def _nino(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNOPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXYZ")
    d = "".join(rng.choice(string.digits) for _ in range(6))
    return rng.choice([f"{first}{second}{d}{rng.choice('ABCD')}",
                       f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}"])


def _national_id(fakes: dict[str, Faker], rng: random.Random) -> str:
    loc = rng.choice(("fi_FI", "fr_FR", "hu_HU", "en_GB"))
    if loc == "en_GB":
        return _nino(rng)
    while True:
        x = fakes[loc].ssn()
        if loc != "hu_HU" or len(x) == 11:  # Faker appends "10" when the check value is 10: no such id
            return x


def _value(kind: str, locale: str, fakes: dict[str, Faker], rng: random.Random) -> str:
    fake = fakes[locale]
    if kind == "email":
        return fake.email()
    if kind == "phone":
        return fake.phone_number()
    if kind == "card":
        return _card(fake, rng)
    if kind == "ssn":
        return fakes["en_US"].ssn()
    if kind == "national_id":
        return _national_id(fakes, rng)
    if kind == "iban":
        return fake.iban()
    if kind == "ip":
        return fake.ipv4() if rng.random() < 0.7 else fake.ipv6()
    if kind == "secret":
        return _secret(rng)
    return fake.address() if rng.random() < 0.4 else fake.street_address()


def _fill(template: str, value: str, kind: str, locale: str) -> Sample:
    i = template.index("{x}")
    text = template[:i] + value + template[i + 3:]
    return Sample(text, ((i, i + len(value), kind),), locale)


def generate(n_per_type_locale: int = 40, seed: int = 16) -> list[Sample]:
    """n samples per (type, locale), plus the quoted misses; deterministic for a seed."""
    rng = random.Random(seed)
    fakes = {}
    for loc in LOCALES + ("en_US",):
        fakes[loc] = Faker(loc)
        fakes[loc].seed_instance(rng.randrange(2**31))
    out = [_fill(t, v, k, "quoted") for t, v, k in QUOTED]
    for kind in TYPES:
        for loc in LOCALES:
            for _ in range(n_per_type_locale):
                out.append(_fill(rng.choice(TEMPLATES[kind]), _value(kind, loc, fakes, rng), kind, loc))
    # a few posts with several identifiers, as people write them
    for loc in LOCALES:
        for _ in range(n_per_type_locale // 4):
            parts = [("Selling my old bike, ", None), (fakes[loc].street_address(), "address"),
                     (" for pickup. Call ", None), (fakes[loc].phone_number(), "phone"),
                     (" or mail ", None), (fakes[loc].email(), "email"), (".", None)]
            text, spans = "", []
            for s, kind in parts:
                if kind:
                    spans.append((len(text), len(text) + len(s), kind))
                text += s
            out.append(Sample(text, tuple(spans), loc))
    return out
