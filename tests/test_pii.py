"""processing.pii: every type with real-looking cases in several locales (issue 16's misses among
them), the numbers that must survive, overlap resolution and the public scrub function."""
from __future__ import annotations

import pytest

from processing import pii
from processing.cleaning import CleaningOptions
from processing.pii import Span, resolve, scrub


def kinds(text: str) -> dict[str, int]:
    return scrub(text)[1]


# ------------------------------------------------------------------ issue 16's quoted misses
@pytest.mark.parametrize("raw, out", [
    ("Here's my SSN: 460-89-9847", "Here's my SSN: [SSN]"),
    ("My IBAN is GB59IFUE40226315499137", "My IBAN is [IBAN]"),
    ("call me at 60-56-85-91 after work", "call me at [PHONE] after work"),
    ("my number is 07700 063 966, text first", "my number is [PHONE], text first"),
    ("Phone: (37) 788-063", "Phone: [PHONE]"),
    ("used my card 675936625853 online", "used my card [CARD] online"),
    ("I live at 6750 Koskikatu 25 Apt. 864, third floor.", "I live at [ADDRESS], third floor."),
])
def test_issue_misses(raw, out):
    assert scrub(raw)[0] == out


# ------------------------------------------------------------------ phones
@pytest.mark.parametrize("text, region", [
    ("Lost dog, please call me at (591) 341-7776 if you see him", None),  # en_US
    ("ring me on 020 7946 0958 tonight", None),  # en_GB
    ("Tel.: +44(0)115 4960914", None),
    ("Ruf mich an unter 05771 046563, ab 18 Uhr", None),  # de_DE
    ("Handy: +49 (0) 9141 777631", None),
    ("Appelez-moi au 04 99 70 70 49 pour les détails", None),  # fr_FR
    ("Soita numeroon +358 40 1234567 niin sovitaan", None),  # fi_FI
    ("Hívj a (06)91/417-7763 számon este", None),  # hu_HU
    ("text me 881.428.6570x704", None),  # extension included
    ("WhatsApp 0612345678 for orders", "NL"),  # a region hint
])
def test_phone(text, region):
    out, counts = scrub(text, region)
    assert counts == {"phone": 1} and "[PHONE]" in out
    assert not any(c.isdigit() for c in out.split("[PHONE]")[0][-3:])


# ------------------------------------------------------------------ numbers that must survive
@pytest.mark.parametrize("text", [
    "In 1999 I paid $1,299.99 for 2 cars; score 21-14 on 2019-05-12 at 10:30.",
    "Ordered 3 pairs on 12/05/2019, arrived 14.05.2019 at 16:45, order #112-3456789-1234567.",
    "The Canon EOS 5D Mark IV (model 1483C002) is 1,049 g; ISBN 978-0-13-110362-7.",
    "We won 105-98 in overtime, 12,345 fans, ticket 2019 row 12 seat 7.",
    "Population 8 336 817 in 2019; GDP $21.43 trillion; 3.5% growth.",
    "Flight LH 454 leaves 10:30-11:45, gate B22, seat 23C, 2 h 15 min.",
    "my order number is 1234567890123 and it still hasn't shipped",  # Luhn fails, not a phone
    "tracking number 0612345678 says delivered",
    "Spring 2019 was great, I read 20 books and ran 1000 km.",
    "Linux 2.6.11.4-21.10-default on my desktop",  # a version, not an IP
    "for 10 Tips For The Perfect Drive see the Top 10 Songs About The Road",
])
def test_numbers_survive(text):
    assert scrub(text) == (text, {})


# ------------------------------------------------------------------ cards
@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "3782 822463 10005",
    "6011000990139424", "4042304114426941",
])
def test_card(card):
    assert scrub(f"charged my card {card} twice") == ("charged my card [CARD] twice", {"card": 1})


def test_card_12_digits_needs_card_word():
    assert kinds("Maestro 675936625853") == {"card": 1}
    assert kinds("tracking 675936625853") == {}


# ------------------------------------------------------------------ SSN and national ids
@pytest.mark.parametrize("raw, out", [
    ("SSN 297-03-6819 on the form", "SSN [SSN] on the form"),
    ("social security number 297036819", "social security number [SSN]"),
    ("henkilötunnus 131052-308T", "henkilötunnus [ID_NUMBER]"),  # fi_FI HETU
    ("sécurité sociale 1 84 12 76 451 089 46", "sécurité sociale [ID_NUMBER]"),  # fr_FR NIR
    ("A személyi számom 14801230598.", "A személyi számom [ID_NUMBER]."),  # hu_HU
    ("my NI number is JG 10 37 59 A", "my NI number is [ID_NUMBER]"),  # en_GB
    ("Steuer-ID 36574261809", "Steuer-ID [ID_NUMBER]"),  # de_DE
])
def test_ids(raw, out):
    assert scrub(raw)[0] == out


@pytest.mark.parametrize("text", [
    "SSN 000-12-3456 is not issued", "room 666-12-3456", "invoice 297036819",  # no id word
    "131052-308X", "tax 36574261808",  # checksums fail
])
def test_id_false_positives(text):
    assert kinds(text) == {}


# ------------------------------------------------------------------ IBAN
@pytest.mark.parametrize("value", [
    "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "FR1420041010050500013M02606",
    "FI2112345600000785", "HU42117730161111101800000000",
])
def test_iban(value):
    assert scrub(f"Überweisung an {value}, danke") == ("Überweisung an [IBAN], danke", {"iban": 1})


def test_iban_checksum():
    assert kinds("code DE89370400440532013001") == {}


# ------------------------------------------------------------------ emails, IPs, handles
def test_email_ip_handle():
    text = "mail jane.doe+x@mail.example.co.uk, server 192.168.0.1 and fe80::1, thanks @bob_99"
    assert scrub(text) == ("mail [EMAIL], server [IP] and [IP], thanks [USER]",
                           {"email": 1, "ip": 2, "handle": 1})


# ------------------------------------------------------------------ secrets
@pytest.mark.parametrize("secret", [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1B2c3D4e5" * 3 + "a1B2c3",
    "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "glpat-AbCdEf4hIjKlMn0pQrSt",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/def\n-----END RSA PRIVATE KEY-----",
])
def test_secret(secret):
    assert scrub(f"config:\n{secret}\nwhy does it fail?") == ("config:\n[SECRET]\nwhy does it fail?",
                                                              {"secret": 1})


def test_password_in_url():
    assert scrub("db at https://admin:hunter2@db.example.com:5432/prod now") == (
        "db at [SECRET] now", {"secret": 1})


# ------------------------------------------------------------------ street addresses
@pytest.mark.parametrize("raw", [
    "5771 Larry Junctions Suite 341\nRachelhaven, IL 79884",  # en_US with city, state, ZIP
    "66907 Griffith Forks Apt. 500",
    "Studio 47S\nHughes Crescent\nWest Emmamouth\nTQ34 4WH",  # en_GB
    "77 Pearson Court",
    "230 W. 19th St.",
    "Rose-Krebs-Straße 7\n63608 Zschopau",  # de_DE
    "Striebitzstr. 28-13",
    "44, rue de Prévost\n04122 Saint Alex",  # fr_FR
    "12 bis avenue Victor Hugo",
    "Haagan pappilanpolku 925",  # fi_FI
    "Mannerheimintie 5 A 12\n00100 Helsinki",
    "Ligetfalvai utca 27.\nH-6000 Zalaegerszeg",  # hu_HU
    "Kossuth Lajos u. 12.",
])
def test_address(raw):
    out, counts = scrub(f"Ship to:\n{raw}\nthanks")
    assert counts == {"address": 1} and out.startswith("Ship to:\n[ADDRESS]")
    assert not any(c.isdigit() for c in out)


def test_address_in_prose():
    text = "the 3rd house on the right. *4023 Bickley Place ... call 451-0304 if you get lost"
    assert scrub(text) == ("the 3rd house on the right. *[ADDRESS] ... call [PHONE] if you get lost",
                           {"address": 1, "phone": 1})


@pytest.mark.parametrize("text", [
    "I drove 2 hours to drive home", "3 Main points", "we won 3 Street Fighter matches",
    "all 9 Supreme Court justices", "535 Please Drive Carefully", "I rue the day",
    "Die Straße war 5 km lang.", "the tie 3 times",
])
def test_address_false_positives(text):
    assert kinds(text) == {}


# ------------------------------------------------------------------ resolution and API
def test_resolve_longest_then_most_specific():
    spans = [Span(0, 10, "phone"), Span(0, 10, "ssn"), Span(5, 20, "address"), Span(25, 30, "email")]
    assert resolve(spans) == [Span(5, 20, "address"), Span(25, 30, "email")]
    assert resolve([Span(0, 11, "phone"), Span(0, 11, "ssn")]) == [Span(0, 11, "ssn")]


def test_kinds_subset_and_unknown_kind():
    text = "SSN 297-03-6819, mail a@b.io"
    assert scrub(text, kinds=["email"]) == ("SSN 297-03-6819, mail [EMAIL]", {"email": 1})
    with pytest.raises(ValueError, match="passport"):
        scrub("x", kinds=["passport"])
    assert scrub("") == ("", {})
    assert set(pii.PLACEHOLDERS) == set(pii.KINDS)


# ------------------------------------------------------------------ counts per type reach curate's stats
def test_curate_counts_per_type():
    import pyarrow as pa

    from core import schema as S
    from processing.curate import process_batch
    from processing.settings import CurateConfig

    long = ("We spent the weekend repainting the kitchen and arguing about the colour for an hour before "
            "settling on a pale green that reminds us of our grandmother's old house by the sea. ") * 3
    row = {S.PLATFORM: "blogger", S.USER_ID: "u", S.TS: 0, S.SOURCE_URI: "f", S.AUTHOR: "someone",
           S.KIND: S.BLOG_POST, S.EVENT_ID: "e0", S.SOURCE_ROW: 0, S.TITLE: "Call 555-123-4567",
           S.TEXT: long + "Here's my SSN: 460-89-9847 and my IBAN is GB59IFUE40226315499137."}
    counts: dict[str, int] = {}
    kept, _ = process_batch(pa.Table.from_pylist([row], schema=S.READ_BATCH_SCHEMA), "blogger", CurateConfig(),
                            pii_counts=counts)
    assert counts == {"ssn": 1, "iban": 1, "phone": 1}
    assert kept[S.PII_COUNT][0].as_py() == 3 and kept[S.TITLE][0].as_py() == "Call [PHONE]"


def test_texts_without_a_trigger_have_no_pii():
    """pii.may_contain's gate: every generated PII sample (each type and locale) and each found value on
    its own are flagged; clean_column (which scrubs only the flagged texts) equals clean_text on each."""
    import numpy as np
    import pyarrow as pa

    from bench.pii_set import generate
    from processing.cleaning import clean_column, clean_text

    texts = [s.text for s in generate(8, seed=3)]
    texts += [t[s.start:s.end] for t in texts[:] for s in pii.detect(t)]
    found = np.array([bool(pii.detect(t)) for t in texts])
    flagged = np.zeros(len(texts), bool)
    flagged[pii.may_contain(pa.array(texts))] = True
    assert found.sum() > 900 and not (found & ~flagged).any()
    plain = ["A quiet walk in the park, then home.", "along the rue de Rivoli", "no digits here at all", None, ""]
    mixed = texts[:300] + plain
    col = clean_column(pa.array(mixed))
    want = [None if t is None else clean_text(t) for t in mixed]
    assert col[0].to_pylist() == [w and w.text for w in want]
    assert col[3].to_pylist() == [sum(w.pii_counts.values()) if w else 0 for w in want]
    assert pii.may_contain(pa.array(plain)).tolist() == [1]


def test_every_real_post_with_pii_is_flagged(shared_data):
    import numpy as np
    import pyarrow as pa

    from processing.cleaning import clean_text
    from processing.readers import read_file
    from processing.readers.base import Event, ReadContext

    texts = []
    for pattern, fmt in (("reddit_pushshift/*.zst", "reddit_pushshift"), ("blog_authorship/*.xml", "blogger_xml"),
                         ("amazon_reviews_2018/*.json", "amazon_2018"), ("twitter_sentiment140/*.csv", "sentiment140")):
        for path in sorted(shared_data.glob(pattern)):
            texts += [clean_text(r.get("text"), CleaningOptions(scrub_pii=False)).text
                      for r in read_file(str(path), fmt, ReadContext(str(path), "t")) if isinstance(r, Event)]
    found = np.array([bool(pii.detect(t)) for t in texts])
    flagged = np.zeros(len(texts), bool)
    flagged[pii.may_contain(pa.array(texts))] = True
    assert len(texts) > 4000 and found.sum() > 50 and not (found & ~flagged).any()
