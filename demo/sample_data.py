"""Deterministic sample of raw user logs in each platform's native format.

``write_sample`` writes a small (< 2 MB) bundle that mimics the public dumps the
pipeline reads (Pushshift Reddit, Twitter API v1.1 / v2, Sentiment140, the
twitter100m HF dumps, the Blog Authorship Corpus, Amazon Reviews 2018 / 2023), so
the demo and the tests run with no downloads. Every synthetic person has a stable
persona (name, job, city, hobbies, family, pet) and writes templated first-person
posts about their life, so each timeline reads as one consistent person. Most rows
pass the HumanLLM curation filters; a few are planted to fail each rule (the counts
are logged as "planted"). ``write_synthetic_corpus`` writes a large Reddit + Amazon
corpus for benchmarks.

Everything derives from ``random.Random`` seeded with ``seed``: two runs with the
same arguments produce byte-identical files.

    python -m demo.sample_data OUT_DIR [--seed N] [--users N] [--events N]
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

T_LO, T_HI = 1672531200, 1735689599  # 2023-01-01 .. 2024-12-31 (UTC)
JAN24 = (1704067200, 1706745599)  # the month covered by RS_/RC_2024-01
TWITTER_EPOCH_MS = 1288834974657
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]  # no strftime: locale-free
MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# ---------------------------------------------------------------- word banks
FIRST = {"female": ["Anna", "Maya", "Laura", "Priya", "Sofia", "Emma", "Grace", "Hannah", "Julia", "Nora"],
         "male": ["Ben", "Carlos", "David", "Ethan", "Felix", "George", "Omar", "Jake", "Leo", "Marcus"]}
LAST = ["Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Iyer", "Jensen", "Kowalski",
        "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Quinn", "Reyes", "Schmidt", "Turner", "Walsh"]
# (job, Blog Authorship Corpus industry, what a busy work week looks like)
JOBS = [("nurse", "HealthCare", "covering night shifts on the ward"),
        ("high school teacher", "Education", "grading a mountain of essays"),
        ("software developer", "Technology", "chasing a bug that only shows up in production"),
        ("electrician", "Construction", "rewiring an old house downtown"),
        ("accountant", "Accounting", "closing the quarter with my team"),
        ("graphic designer", "Arts", "redesigning the logo of a local bakery"),
        ("librarian", "Museums-Libraries", "running the kids reading hour"),
        ("line cook", "indUnk", "working doubles during the dinner rush"),
        ("paralegal", "Law", "preparing files for a big trial"),
        ("bus driver", "Transportation", "driving the early route across the river"),
        ("lab technician", "Science", "running samples late into the evening"),
        ("marketing assistant", "Marketing", "planning a product launch")]
CITIES = [("Austin", "Lady Bird Lake"), ("Denver", "Washington Park"), ("Portland", "Forest Park"),
          ("Leeds", "Roundhay Park"), ("Toronto", "High Park"), ("Melbourne", "the Botanic Gardens"),
          ("Columbus", "the Scioto Mile"), ("Raleigh", "Umstead Park"), ("Glasgow", "Kelvingrove Park"),
          ("Sacramento", "the American River trail"), ("Tucson", "Sabino Canyon"), ("Pittsburgh", "Frick Park")]
# (hobby, subreddit, gear sold on Amazon, Amazon category path)
HOBBIES = [
    ("baking sourdough", "Breadit", "bread proofing basket", "Home & Kitchen>Kitchen & Dining>Bakeware"),
    ("trail running", "trailrunning", "hydration vest", "Sports & Outdoors>Running>Hydration Packs"),
    ("gardening", "gardening", "pair of pruning shears", "Patio, Lawn & Garden>Gardening>Hand Tools"),
    ("woodworking", "woodworking", "chisel set", "Tools & Home Improvement>Hand Tools>Chisels"),
    ("film photography", "AnalogCommunity", "camera strap", "Electronics>Camera & Photo>Straps"),
    ("playing chess", "chess", "chess clock", "Toys & Games>Games>Board Games"),
    ("hiking", "hiking", "pair of trekking poles", "Sports & Outdoors>Outdoor Recreation>Hiking"),
    ("home brewing", "Homebrewing", "brewing thermometer", "Home & Kitchen>Kitchen & Dining>Brewing"),
    ("cycling", "bicycling", "rechargeable bike light", "Sports & Outdoors>Cycling>Lights"),
    ("painting miniatures", "minipainting", "detail brush set", "Arts, Crafts & Sewing>Painting>Brushes"),
    ("learning guitar", "Guitar", "guitar capo", "Musical Instruments>Guitars>Accessories"),
    ("birdwatching", "birding", "pair of compact binoculars", "Electronics>Camera & Photo>Binoculars"),
]
FAMILY = ["my wife {f}", "my husband {m}", "my partner {f}", "my partner {m}", "my sister {f}",
          "my brother {m}", "my mom", "my dad", "my roommate {m}"]
PETS = ["my dog Biscuit", "my cat Pepper", "my dog Rosie", "my cat Mochi", "my old beagle Max",
        "my rescue cat Juniper"]
SIGNS = ["Aries", "Taurus", "Gemini", "Cancer", "Leo", "Virgo", "Libra", "Scorpio", "Sagittarius",
         "Capricorn", "Aquarius", "Pisces"]
BRANDS = ["Northwind", "Acorn", "Bluepeak", "Everfield", "Tidewater", "Kestrel", "Maplecraft", "Solace"]

# Life events, past tense, completing "I ...": consumed in order so a timeline moves forward.
EVENTS = [
    "finally signed up for a {hobby} class", "got promoted to senior {job}",
    "moved into a smaller apartment across town", "took {family} on a weekend trip to the coast",
    "spent three evenings fixing the leaking kitchen sink", "ran into an old school friend at the farmers market",
    "started waking up at six to make time for {hobby}", "took {pet} to the vet for a checkup",
    "had a rough week after a big deadline slipped at work", "bought a used car after the old one gave up",
    "volunteered at the food bank downtown", "hosted dinner for the whole team from work",
    "sprained my ankle and had to rest for two weeks", "paid off the last of my student loans",
]
OPENERS = ["This week I {event}.", "Small update from {city}: I {event}.",
           "A few days ago I {event}, and I am still thinking about it.",
           "So I {event} and wanted to share how it went."]
TITLES = ["I {event} - long post, sorry", "Update: I {event}", "Small win: I {event}",
          "{hobby} check-in: I {event}"]
COMMENT_OPENERS = ["This really resonates with me, I went through something similar last year.",
                   "Great write-up, thanks for taking the time to share it.",
                   "Congrats, that is a big step and you should be proud of it!",
                   "Funny timing, I was just talking about this with {family} yesterday."]
SENTENCES = [
    "I have worked as {a_job} in {city} for {years} years, so my free time is precious.",
    "Most evenings I try to squeeze in an hour of {hobby} after work.",
    "{family} keeps telling me I should write down my {hobby} mistakes, so here we are.",
    "{pet} sat next to me the whole time, judging every single step.",
    "Being {a_job} teaches you patience, and that helps more than I expected with {hobby}.",
    "The weather in {city} has been unpredictable lately, which changed a lot of my plans.",
    "I asked {family} for an honest opinion and got exactly that, for better or worse.",
    "Next month I want to get back into {hobby2}, maybe with a couple of friends from work.",
    "Money is a bit tight right now, so I am cooking at home and cutting back on takeout.",
    "It is funny how small routines, like a coffee before {hobby}, make the whole week calmer.",
    "I would love to hear how other people balance work, family and a hobby like {hobby}.",
    "Looking back, I should have started this years ago instead of waiting for the perfect moment.",
    "There were a few frustrating moments, but overall I am proud of how it turned out.",
    "Honestly, I did not expect it to feel this good to finish something with my own hands.",
    "Work has been all about {workday} lately, so I am running on coffee.",
    "On Sunday I walked around {spot} with {family} just to clear my head.",
    "I finally replaced my old {gear}, and it made a bigger difference than I thought.",
    "Between {workday} and family stuff, {hobby} is the one thing that is just for me.",
]
REVIEW_SENTENCES = [
    "I bought this {product} a few weeks ago and have used it almost every day since.",
    "As {a_job} I do not have much spare time, so I need things that just work.",
    "I mostly use it for {hobby} and it has held up better than I expected.",
    "The build quality feels solid for the price, although the packaging was a bit flimsy.",
    "{family} borrowed it twice already, which is probably the best review I can give.",
    "My only complaint is that it is slightly heavier than the photos suggest.",
]
BAD_REVIEW = "Sadly it stopped working properly after a month, so I am disappointed."
REVIEW_TITLES = {True: ["Does exactly what I needed", "Solid value", "Better than expected", "Great {product}"],
                 False: ["Disappointed", "Stopped working after a month", "Not worth it"]}
BIO = "{job} in {city}. Into {hobby} and {hobby2}. Opinions my own."
PII = ("If anyone wants my notes, email me at {email} or call (312) 555-01{nn}, and thanks to "
       "@{friend} for the tip; photos are at https://{slug}.example.com/gallery")
SPANISH = ("Esta semana por fin terminé de arreglar la bicicleta de mi hermano y salimos a dar una vuelta "
           "por el parque. Hacía un poco de frío, pero valió la pena. Después fuimos a tomar un café y "
           "hablamos de los viejos tiempos durante horas. Me encanta vivir en esta ciudad y su gente.")
GERMAN = ("Heute war ein langer Tag im Büro, aber am Abend bin ich noch eine Runde im Park gelaufen. Die "
          "Luft war klar und kalt, und ich habe mir vorgenommen, im Frühling meinen ersten Halbmarathon zu "
          "laufen. Mal sehen, ob ich das durchhalte, meine Freunde lachen schon darüber.")
AD = ("Buy now and save big! Our new {product} is 30% off this weekend only. Use code SAVE30 at checkout "
      "for an extra discount and free shipping on every order over $25. Thousands of happy customers "
      "already trust ACME Inc. for quality at unbeatable prices. Limited stock: https://acme.example.com/deals "
      "#sale #discount")
AUTOMOD = ("Thank you for posting to r/{sub}! Please remember to follow the community rules and to flair "
           "your post. Posts without a flair are removed after one hour.\n\n*I am a bot, and this action "
           "was performed automatically. Please contact the moderators of this subreddit if you have any "
           "questions or concerns.*")
SHORT = ["Nice!", "lol same", "This.", "Congrats!", "Coffee first.", "Long day. Bed.", "Works fine.",
         "Not great, returned it."]


@dataclass(frozen=True)
class Persona:
    first: str
    last: str
    handle: str
    gender: str
    age: int
    job: str
    industry: str
    workday: str
    city: str
    spot: str
    hobby: tuple  # one HOBBIES row
    hobby2: str
    family: str
    pet: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def fill(self, template: str, **extra: str) -> str:
        """Render a template with this persona's facts; capitalise the first letter."""
        s = template.format(job=self.job, a_job=("an " if self.job[0] in "aeiou" else "a ") + self.job,
                            workday=self.workday, city=self.city, spot=self.spot, hobby=self.hobby[0],
                            gear=self.hobby[2], hobby2=self.hobby2, family=self.family, pet=self.pet,
                            years=max(2, (self.age - 20) // 2), **extra)
        return s[0].upper() + s[1:]


def _personas(rng: random.Random, n: int) -> list[Persona]:
    """n personas with distinct handles, drawn from the banks."""
    out: list[Persona] = []
    seen: set[str] = set()
    while len(out) < n:
        gender = rng.choice(["female", "male"])
        first, last = rng.choice(FIRST[gender]), rng.choice(LAST)
        h1, h2 = rng.sample(HOBBIES, 2)
        d = rng.randint(10, 99)
        handle = rng.choice([f"{first}{last}{d}", f"{first.lower()}_{last.lower()}",
                             f"{last.lower()}{first[0].lower()}{d}", f"{h1[1].lower()}_{first.lower()}"])
        if handle in seen:
            continue
        seen.add(handle)
        family = rng.choice(FAMILY).format(f=rng.choice(FIRST["female"]), m=rng.choice(FIRST["male"]))
        out.append(Persona(first, last, handle, gender, rng.randint(23, 48), *rng.choice(JOBS),
                           *rng.choice(CITIES), h1, h2[0], family, rng.choice(PETS)))
    return out


def _compose(p: Persona, rng: random.Random, min_chars: int, event: str, opener: str | None = None) -> str:
    """First-person post about `event`: an opener plus persona sentences until >= min_chars."""
    parts = [opener or p.fill(rng.choice(OPENERS).replace("{event}", event))]
    for tpl in rng.sample(SENTENCES, len(SENTENCES)):
        if sum(map(len, parts)) + len(parts) > min_chars:
            break
        parts.append(p.fill(tpl))
    return " ".join(parts)


def _pii(p: Persona, rng: random.Random, friend: str) -> str:
    return PII.format(email=f"{p.first}.{p.last}@example.com".lower(), nn=rng.randint(10, 99),
                      friend=friend, slug=p.last.lower())


def _times(rng: random.Random, n: int, lo: int = T_LO, hi: int = T_HI) -> list[int]:
    return sorted(rng.randint(lo, hi) for _ in range(n))


def _b36(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n, 36)
        s = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + s
    return s or "0"


def _utc(t: int) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def _twitter_date(t: int, zone: str = "+0000") -> str:
    d = _utc(t)
    return f"{DAYS[d.weekday()]} {MONTHS[d.month - 1][:3]} {d.day:02d} {d:%H:%M:%S} {zone} {d.year}"


def _ndjson(rows: list[dict], compact: bool = True) -> bytes:
    sep = (",", ":") if compact else (", ", ": ")
    return "".join(json.dumps(r, ensure_ascii=False, separators=sep) + "\n" for r in rows).encode()


def _zstd(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor(level=3).compress(data)


# ---------------------------------------------------------------- platforms
def _reddit(rng: random.Random, n: int, planted: Counter) -> dict[str, tuple[bytes, int]]:
    people = _personas(rng, n + 3)  # the last 3 are noise users with 3 posts each
    regular, by_handle = people[:n], {p.handle: p for p in people}
    subs: list[dict] = []
    coms: list[dict] = []

    def sub(author, t, title, text, subreddit, score=None, ncom=None, is_self=True, dist=None, url=None):
        subs.append({"id": None, "author": author, "title": title, "selftext": text, "created_utc": t,
                     "subreddit": subreddit, "score": rng.randint(2, 400) if score is None else score,
                     "num_comments": rng.randint(2, 80) if ncom is None else ncom, "is_self": is_self,
                     "distinguished": dist, "permalink": None, "url": url})

    def com(author, t, body, s, parent=None, score=None, dist=None):
        coms.append({"id": None, "author": author, "body": body, "created_utc": t, "link_id": s,
                     "parent_id": parent, "subreddit": s["subreddit"],
                     "score": rng.randint(2, 150) if score is None else score, "distinguished": dist})

    for p in people:  # regular users: 5-6 long self posts; noise users: 2
        events = rng.sample(EVENTS, len(EVENTS))
        for k, t in enumerate(_times(rng, rng.randint(5, 6) if p in regular else 2, *JAN24)):
            sub(p.handle, t, p.fill(rng.choice(TITLES).replace("{event}", events[k])),
                _compose(p, rng, 320, events[k]), p.hobby[1])
    for s in rng.sample(subs, 3):
        s["selftext"] += " " + _pii(by_handle[s["author"]], rng, rng.choice(regular).handle)
        planted["pii (email/phone/url/@mention)"] += 1
    for s in rng.sample(subs, 4):
        s["selftext"] += " Thanks for reading &amp; have a great week \U0001F60A"
        planted["html entity + emoji"] += 1
    pool = list(subs)  # comment targets: the regular self posts

    def who() -> Persona:
        return rng.choice(regular)

    def at() -> int:
        return rng.randint(*JAN24)

    p = who()
    sub(p.handle, at(), p.fill(TITLES[0].replace("{event}", EVENTS[0])), "[removed]", p.hobby[1])
    p = who()
    sub("[deleted]", at(), p.fill(TITLES[1].replace("{event}", EVENTS[2])), "[deleted]", p.hobby[1])
    for _ in range(2):
        p = who()
        sub(p.handle, at(), f"Interesting article about {p.hobby[0]} I found this morning", "", p.hobby[1],
            is_self=False, url=f"https://www.example.com/news/{p.hobby[1].lower()}-{rng.randint(100, 999)}")
        p = who()
        sub(p.handle, at(), f"Quick question about {p.hobby[0]}", f"Anyone know a good {p.hobby[2]} shop in {p.city}?",
            p.hobby[1])
        p = who()
        sub(p.handle, at(), p.fill(TITLES[2].replace("{event}", EVENTS[5])), _compose(p, rng, 320, EVENTS[5]),
            p.hobby[1], score=rng.randint(0, 1), ncom=rng.randint(0, 1))
    p = who()
    sub(p.handle, at(), f"Weekly {p.hobby[0]} discussion thread", _compose(p, rng, 320, EVENTS[10]),
        p.hobby[1], dist="moderator")
    p = who()
    sub(p.handle, at(), "Por fin arreglé la bicicleta de mi hermano", SPANISH, p.hobby[1])
    planted.update({"noise user (< 8 posts)": 3, "[removed] body": 1, "[deleted] author": 1,
                    "link post (is_self false)": 2, "bare short question": 2,
                    "low engagement (score<2, num_comments<2)": 2,
                    "moderator distinguished": 1, "non-English": 1})

    subs.sort(key=lambda r: r["created_utc"])
    sid = int("18vh000", 36)
    for s in subs:
        sid += rng.randint(1, 1500)
        s["id"] = _b36(sid)
        slug = "_".join(s["title"].lower().replace("?", "").replace(":", "").split()[:6])
        s["permalink"] = f"/r/{s['subreddit']}/comments/{s['id']}/{slug}/"
        s["url"] = s["url"] or "https://www.reddit.com" + s["permalink"]

    def later(t: int) -> int:
        return min(t + rng.randint(600, 4 * 86400), JAN24[1])

    for p in people:  # top-level comments under other users' posts, each recalling a life event
        for ev in rng.sample(EVENTS, rng.randint(5, 6) if p in regular else 1):
            s = rng.choice([s for s in pool if s["author"] != p.handle])
            opener = p.fill(rng.choice(COMMENT_OPENERS)) + " " + p.fill(f"Last month I {ev}.")
            com(p.handle, later(s["created_utc"]), _compose(p, rng, 250, "", opener), s)
    regular_coms = list(coms)
    for i in range(4):
        p, s = who(), rng.choice(pool)
        com(p.handle, later(s["created_utc"]), SHORT[i], s)
        parent = rng.choice(regular_coms)
        com(p.handle, later(parent["created_utc"]), _compose(p, rng, 250, "", p.fill(COMMENT_OPENERS[1])),
            parent["link_id"], parent=parent)
    for s in rng.sample(pool, 2):
        com("AutoModerator", s["created_utc"] + 5, AUTOMOD.format(sub=s["subreddit"]), s, score=1,
            dist="moderator")
    s = rng.choice(pool)
    com("[deleted]", later(s["created_utc"]), "[deleted]", s)
    s = rng.choice(pool)
    com(who().handle, later(s["created_utc"]), "[removed]", s)
    planted.update({"short comment": 4, "reply (non-top-level) comment": 4, "AutoModerator author": 2,
                    "[deleted] author": 1, "[removed] body": 1})

    coms.sort(key=lambda r: r["created_utc"])
    cid = int("kfz0000", 36)
    for c in coms:
        cid += rng.randint(1, 5000)
        c["id"] = _b36(cid)
    for c in coms:  # resolve object references into Reddit fullnames
        c["link_id"] = "t3_" + c["link_id"]["id"]
        c["parent_id"] = c["link_id"] if c["parent_id"] is None else "t1_" + c["parent_id"]["id"]
    for r in subs + coms:  # real dumps mix int, float and string epochs
        u = rng.random()
        r["created_utc"] = float(r["created_utc"]) if u < 0.1 else str(r["created_utc"]) if u < 0.2 \
            else r["created_utc"]
    return {"reddit/RS_2024-01.zst": (_zstd(_ndjson(subs)), len(subs)),
            "reddit/RC_2024-01.zst": (_zstd(_ndjson(coms)), len(coms))}


def _twitter(rng: random.Random, n: int, planted: Counter) -> dict[str, tuple[bytes, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    people = _personas(rng, n + 2)
    formats = ["v1", "v2", "s140", "t100m"]
    users = []  # dicts: persona-ish fields + format
    for i, p in enumerate(people):
        users.append({"id": rng.randint(10**8, 2 * 10**9), "handle": p.handle, "name": p.name,
                      "bio": p.fill(BIO), "followers": rng.randint(40, 5000), "city": p.city,
                      "fmt": formats[i % 4], "p": p})
    for fmt, handle in (("v1", "acme_store"), ("t100m", "acme_deals")):
        users.append({"id": rng.randint(10**8, 2 * 10**9), "handle": handle, "name": "ACME Inc.",
                      "bio": "Official store of ACME Inc. Deals, new arrivals and customer care.",
                      "followers": rng.randint(20000, 90000), "city": "Chicago", "fmt": fmt, "p": None})
    planted["corporate account"] += 2
    planted["noise user (< 8 posts)"] += 2
    tweets = []  # [user, t, text, lang, retweeted_tweet]

    for u in users:
        p = u["p"]
        count = 8 if p is None else 3 if p in people[n:] else rng.randint(9, 12)
        events = rng.sample(EVENTS, len(EVENTS))
        for k, t in enumerate(_times(rng, count)):
            if p is None:
                text = AD.format(product=rng.choice(HOBBIES)[2])
                planted["ad tweet"] += 1
            else:
                text = _compose(p, rng, 310, events[k % len(events)])
            tweets.append([u, t, text, "en", None])
    own = [tw for tw in tweets if tw[0]["p"] is not None]
    for tw in rng.sample(own, 3):
        tw[2] += " " + _pii(tw[0]["p"], rng, rng.choice(users)["handle"])
        planted["pii (email/phone/url/@mention)"] += 1
    for tw in rng.sample(own, 5):
        tw[2] += " Grateful for good friends &amp; good coffee today \U0001F389 #weekend"
        planted["html entity + emoji"] += 1
    for i, u in enumerate(users[:n]):
        if i % 3 == 0:
            orig = rng.choice([tw for tw in own if tw[0] is not u])
            tweets.append([u, min(orig[1] + rng.randint(60, 86400), T_HI),
                           f"RT @{orig[0]['handle']}: {orig[2][:110]}", "en", orig])
            planted["retweet"] += 1
        if i % 5 == 1:
            tweets.append([u, rng.randint(T_LO, T_HI), rng.choice(SHORT[4:6]), "en", None])
            planted["short tweet"] += 1
    tweets.append([users[1], rng.randint(T_LO, T_HI), GERMAN, "de", None])
    planted["non-English"] += 1

    tweets.sort(key=lambda tw: tw[1])
    for tw in tweets:  # snowflake ids, increasing with time
        tw.append(((tw[1] * 1000 + rng.randint(0, 999) - TWITTER_EPOCH_MS) << 22) | rng.getrandbits(22))
    by_fmt = {f: [tw for tw in tweets if tw[0]["fmt"] == f] for f in formats}

    def v1_user(u: dict) -> dict:
        return {"id": u["id"], "id_str": str(u["id"]), "name": u["name"], "screen_name": u["handle"],
                "location": u["city"], "description": u["bio"], "followers_count": u["followers"],
                "verified": u["p"] is None}

    v1 = []
    for u, t, text, lang, rt, tid in by_fmt["v1"]:
        row = {"created_at": _twitter_date(t), "id": tid, "id_str": str(tid), "full_text": text}
        if rng.random() < 0.3:
            row["text"] = text
        row.update({"truncated": False, "lang": lang, "retweet_count": rng.randint(0, 40),
                    "favorite_count": rng.randint(0, 300), "user": v1_user(u)})
        if rt:
            row["retweeted_status"] = {"created_at": _twitter_date(rt[1]), "id": rt[5], "id_str": str(rt[5]),
                                       "full_text": rt[2], "user": v1_user(rt[0])}
        v1.append(row)

    pages, page_rows = [], by_fmt["v2"][::-1]  # search results come newest first
    for i in range(0, len(page_rows), 10):
        chunk, seen, inc = page_rows[i:i + 10], set(), []
        data = []
        for u, t, text, lang, rt, tid in chunk:
            d = {"id": str(tid), "text": text, "author_id": str(u["id"]),
                 "created_at": _utc(t).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "lang": lang}
            if rt:
                d["referenced_tweets"] = [{"type": "retweeted", "id": str(rt[5])}]
            data.append(d)
            if u["id"] not in seen:
                seen.add(u["id"])
                inc.append({"id": str(u["id"]), "username": u["handle"], "name": u["name"],
                            "description": u["bio"], "location": u["city"],
                            "public_metrics": {"followers_count": u["followers"],
                                               "following_count": rng.randint(10, 900)}})
        meta = {"newest_id": data[0]["id"], "oldest_id": data[-1]["id"], "result_count": len(data)}
        if i + 10 < len(page_rows):
            meta["next_token"] = "".join(rng.choice(ALNUM.lower()) for _ in range(18))
        pages.append({"data": data, "includes": {"users": inc}, "meta": meta})

    s140 = io.StringIO()
    w = csv.writer(s140, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for k, (u, t, text, lang, rt, tid) in enumerate(by_fmt["s140"]):
        ascii_text = text.encode("ascii", "ignore").decode().replace(" #weekend", "")
        w.writerow([rng.choice([0, 4]), 1467810369 + 7919 * k, _twitter_date(t, "UTC"),
                    "NO_QUERY", u["handle"], ascii_text])

    rows = by_fmt["t100m"]
    tweets_tbl = pa.table({
        "id": pa.array([tw[5] for tw in rows], pa.int64()),
        "user": [tw[0]["handle"] for tw in rows],
        "user_id": pa.array([tw[0]["id"] for tw in rows], pa.int64()),
        "tweet": [tw[2] for tw in rows],
        "date": pa.array([tw[1] * 10**6 for tw in rows], pa.timestamp("us", tz="UTC")),
        **{c: pa.array([rng.randint(0, 200) for _ in rows], pa.int64())
           for c in ("likes", "retweets", "replies", "quotes")}})
    t_users = [u for u in users if u["fmt"] == "t100m"]
    users_tbl = pa.table({
        "user_id": pa.array([u["id"] for u in t_users], pa.int64()), "user": [u["handle"] for u in t_users],
        "name": [u["name"] for u in t_users], "description": [u["bio"] for u in t_users],
        "followers": pa.array([u["followers"] for u in t_users], pa.int64()),
        "location": [u["city"] for u in t_users], "verified": [u["p"] is None for u in t_users]})

    def parquet(tbl) -> bytes:
        buf = pa.BufferOutputStream()
        pq.write_table(tbl, buf)
        return buf.getvalue().to_pybytes()

    return {"twitter/tweets_v1.jsonl": (_ndjson(v1), len(v1)),
            "twitter/pages_v2.jsonl": (_ndjson(pages), sum(len(pg["data"]) for pg in pages)),
            "twitter/sentiment140.csv": (s140.getvalue().encode("latin-1"), len(by_fmt["s140"])),
            "twitter/twitter100m/tweets.parquet": (parquet(tweets_tbl), len(rows)),
            "twitter/twitter100m/users.parquet": (parquet(users_tbl), len(t_users))}


def _blogger(rng: random.Random, n: int, planted: Counter) -> dict[str, tuple[bytes, int]]:
    out = {}
    ids = rng.sample(range(1_000_000, 4_400_000), n + 1)
    for i, p in enumerate(_personas(rng, n + 1)):
        posts = []  # (date string, text)
        events = rng.sample(EVENTS, len(EVENTS))
        for k, t in enumerate(_times(rng, 2 if i == n else rng.randint(9, 12))):
            text = _compose(p, rng, 420, events[k % len(events)])
            if k % 3 == 0:
                text += f" Afterwards {p.family} & I grabbed dinner and talked about everything except work."
            if k % 4 == 1:
                text += f" There is a good write-up at urlLink {p.hobby[0]} for beginners if you are curious."
            d = _utc(t)
            posts.append([f"{d.day:02d},{MONTHS[d.month - 1]},{d.year}", text])
        if i == 0 < n:
            posts[0][0], posts[1][0] = "31,February,2024", "14,Juni,2024"
            planted["blog post with unparseable date"] += 2
        if i == 1 < n:  # the Latin-1 file
            posts[2][1] += " We ended the day at the new café on Main Street."
            posts.append(["03,March,2024", SPANISH])
            planted["non-English"] += 1
        if i in (2, 3, 4) and i < n:
            posts.append(["10,May,2024", f"Tired today. Work was long & {p.pet} kept me up. Bed."])
            planted["short blog post"] += 1
        if i in (5, 6) and i < n:
            posts[1][1] += " " + _pii(p, rng, "").split(", and thanks")[0] + "."
            planted["pii (email/phone/url/@mention)"] += 1
        rng.shuffle(posts)
        body = "".join(f"<date>{d}</date>\r\n<post>\r\n\r\n\t\t\t\t\t\t   {text}  \r\n</post>\r\n\r\n"
                       for d, text in posts)
        name = f"blogger/{ids[i]}.{p.gender}.{p.age}.{p.industry}.{rng.choice(SIGNS)}.xml"
        out[name] = (f"<Blog>\r\n\r\n{body}</Blog>\r\n".encode("latin-1"), len(posts))
    planted["noise user (< 8 posts)"] += 1
    return dict(sorted(out.items()))


HOT_ITEMS = 10


def _amazon(rng: random.Random, n: int, planted: Counter) -> dict[str, tuple[bytes, int]]:
    def code(prefix: str, k: int) -> str:
        return prefix + "".join(rng.choice(ALNUM) for _ in range(k))

    def review(p: Persona, product: str, rating: int) -> tuple[str, str]:
        # Review sentences plus the reviewer's own life: reviews by different people differ like real ones do.
        k = rng.randint(2, 3)
        text = " ".join([p.fill(s, product=product) for s in rng.sample(REVIEW_SENTENCES, k)]
                        + [p.fill(s) for s in rng.sample(SENTENCES, 2)]
                        + [f"It arrived after {rng.randint(2, 9)} days and I have used it {rng.randint(3, 40)} times so far."])
        if rating <= 2:
            text += " " + BAD_REVIEW
        return p.fill(rng.choice(REVIEW_TITLES[rating > 2]), product=product), text

    n18 = n // 3
    blocks = {}
    for era, nb in (("2023", n - n18), ("2018", n18)):
        people = _personas(rng, nb + 3)  # the last 3 are noise users reviewing cold items
        m = max(12, nb)
        items = []
        for i in range(m + 3):
            h, brand = HOBBIES[i % len(HOBBIES)], rng.choice(BRANDS)
            items.append({"id": code("B0", 8) if era == "2023" else code("B00", 7), "brand": brand,
                          "product": h[2], "cat": h[3]})
        # Skewed popularity, as real catalogues are: every user reviews 8-9 of the HOT best-sellers
        # and 1-2 of the rest, so the paper's top-half item rule and the 8/3 k-core keep them.
        hot = rng.sample(range(m), HOT_ITEMS)
        warm = [i for i in range(m) if i not in hot]
        rows = []
        for u, p in enumerate(people):
            mine = ([items[i] for i in rng.sample(hot, rng.randint(8, 9)) + rng.sample(warm, rng.randint(1, 2))]
                    if u < nb else [items[m + u - nb], items[rng.randrange(m)]])
            uid = code("A", 27) if era == "2023" else code("A", 13)
            for it, t in zip(rng.sample(mine, len(mine)), _times(rng, len(mine))):
                rating = rng.choice([5, 5, 5, 5, 4, 4, 4, 3, 2, 1])
                title, text = review(p, it["product"], rating)
                rows.append([p, uid, it, t, rating, title, text])
        blocks[era] = (rows, items, nb)
        planted["noise user (< 8 posts)"] += 3
        planted["cold item (< 3 reviewers)"] += 3
        picked = rng.sample([r for r in rows if r[0] in people[:nb]], 6)  # disjoint plants
        for r, short in zip(picked, SHORT[6:] + SHORT[:1]):
            r[6] = short
            planted["short review"] += 1
        if era == "2023":
            picked[3][6] = SPANISH
            planted["non-English"] += 1
            for r in picked[4:]:
                r[6] += " " + _pii(r[0], rng, "").split(", and thanks")[0] + "."
                planted["pii (email/phone/url/@mention)"] += 1

    rows, items, nb = blocks["2023"]
    rev23 = [{"rating": float(rating), "title": title, "text": text, "images": [],
              "asin": it["id"] if rng.random() < 0.8 else code("B0", 8), "parent_asin": it["id"],
              "user_id": uid, "timestamp": t * 1000 + rng.randint(0, 999), "helpful_vote": rng.randint(0, 12),
              "verified_purchase": rng.random() < 0.9} for p, uid, it, t, rating, title, text in rows]
    # The same review pasted under another item, as real dumps have (an exact duplicate for dedup).
    pasted = dict(rev23[1], parent_asin=items[0]["id"], asin=items[0]["id"], timestamp=rev23[1]["timestamp"] + 60_000)
    rev23.insert(2, pasted)
    planted["review pasted under another item"] += 1
    meta = []
    for i, it in enumerate(items):
        cats = it["cat"].split(">")
        meta.append({"main_category": cats[0], "title": "" if i >= len(items) - 2 else
                     f"{it['brand']} {it['product'].replace('pair of ', '').title()}",
                     "average_rating": round(rng.uniform(3.6, 4.8), 1), "rating_number": rng.randint(5, 900),
                     "features": [f"Durable {it['product']}", "Backed by a one-year warranty"],
                     "description": [f"A {it['product']} for everyday use."],
                     "price": round(rng.uniform(8, 90), 2) if i % 5 else None, "images": [], "videos": [],
                     "store": it["brand"], "categories": cats, "details": {"Brand": it["brand"]},
                     "parent_asin": it["id"], "bought_together": None})
    planted["item with empty title"] += 2
    rev18 = []
    for p, uid, it, t, rating, title, text in blocks["2018"][0]:
        day = t - t % 86400
        d = _utc(day)
        rev18.append({"overall": float(rating), "verified": rng.random() < 0.9,
                      "reviewTime": f"{d.month:02d} {d.day}, {d.year}", "reviewerID": uid, "asin": it["id"],
                      "reviewerName": f"{p.first} {p.last[0]}.", "reviewText": text, "summary": title,
                      "unixReviewTime": day})
    meta18 = [{"asin": it["id"], "title": f"{it['brand']} {it['product'].replace('pair of ', '').title()}",
               "brand": it["brand"], "category": it["cat"].split(">"), "feature": [f"Durable {it['product']}"],
               "description": [f"A {it['product']} for everyday use."], "price": "$19.99"}
              for it in blocks["2018"][1]]
    return {"amazon/reviews_2023.jsonl.gz": (gzip.compress(_ndjson(rev23, False), 6, mtime=0), len(rev23)),
            "amazon/meta_2023.jsonl": (_ndjson(meta, False), len(meta)),
            "amazon/reviews_2018.jsonl": (_ndjson(rev18, False), len(rev18)),
            "amazon/meta_2018.jsonl": (_ndjson(meta18, False), len(meta18))}


# ---------------------------------------------------------------- public API
def write_sample(out_dir: str | os.PathLike, seed: int = 0, users_per_platform: int = 30) -> dict:
    """Write the bundled sample under out_dir; return a manifest {relative_path: n_records}.

    n_records counts rows (NDJSON lines, CSV rows, parquet rows), tweets (not pages) for
    pages_v2.jsonl, and posts for each blogger file.
    """
    if users_per_platform < 4:
        raise ValueError("users_per_platform must be >= 4")
    t0, out, planted, manifest, size = time.perf_counter(), Path(out_dir), Counter(), {}, 0
    for name, build in (("reddit", _reddit), ("twitter", _twitter), ("blogger", _blogger), ("amazon", _amazon)):
        for rel, (data, n) in build(random.Random(f"{seed}:{name}"), users_per_platform, planted).items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            manifest[rel], size = n, size + len(data)
    log.info("sample: %d files, %d records, %.0f KB in %.2f s under %s", len(manifest), sum(manifest.values()),
             size / 1024, time.perf_counter() - t0, out)
    log.info("planted: %s", dict(sorted(planted.items())))
    return manifest


def write_synthetic_corpus(out_dir: str | os.PathLike, n_events: int, seed: int = 0, files: int = 8) -> dict:
    """Large generated corpus for benchmarks; returns a manifest {relative_path: n_records}.

    35% Reddit submissions and 35% comments (zstd NDJSON, `files` files in all, split between
    RS_ and RC_), 30% Amazon 2023 reviews (one JSONL.gz). Texts are assembled from a pool of
    pre-rendered persona sentences; ~2.5% are exact and ~2.5% near duplicates of the previous
    text, a few percent are [deleted] authors, short or reply comments.
    """
    import zstandard

    if n_events < 10:
        raise ValueError("n_events must be >= 10")
    t0, rng, out = time.perf_counter(), random.Random(f"{seed}:synthetic"), Path(out_dir)
    esc = lambda s: json.dumps(s, ensure_ascii=False)[1:-1]  # noqa: E731
    people = _personas(rng, 500)
    sents = [[esc(p.fill(s)) for s in SENTENCES] for p in people]
    opens = [[esc(p.fill(rng.choice(OPENERS).replace("{event}", e))) for e in EVENTS] for p in people]
    titles = [[esc(p.fill(rng.choice(TITLES).replace("{event}", e))) for e in EVENTS] for p in people]
    revs = [[esc(p.fill(s, product="{product}")) for s in REVIEW_SENTENCES] for p in people]
    n_users = max(10, n_events // 20)
    authors = [people[a % 500].handle + (f"_{a // 500}" if a >= 500 else "") for a in range(n_users)]
    n_rs, n_rc = int(n_events * 0.35), int(n_events * 0.35)
    n_az = n_events - n_rs - n_rc
    rs_files = max(1, files // 2)
    rc_files = max(1, files - rs_files)
    manifest: dict[str, int] = {}
    prev = ""

    def text_for(a: int, k_lo: int, k_hi: int, e: int) -> str:
        nonlocal prev
        u = rng.random()
        if u < 0.025 and prev:  # exact duplicate
            return prev
        if u < 0.05 and prev:  # near duplicate
            return prev + " Edit: thanks for all the kind replies!"
        pi = a % 500
        prev = opens[pi][e] + " " + " ".join(rng.sample(sents[pi], rng.randint(k_lo, k_hi))) + " " + detail()
        return prev

    vocab = sorted({w.strip(".,!?;:'\"()").lower() for s in SENTENCES + REVIEW_SENTENCES + EVENTS for w in s.split()
                    if w.isalpha() and len(w) > 2})

    def detail() -> str:
        """A sentence of its own per text, so two posts of one persona share few word 5-grams (as real posts)."""
        return "Also " + " ".join(rng.choices(vocab, k=rng.randint(25, 40))) + "."

    def dump(rel: str, lines_iter, count: int, gz: bool = False) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as raw:
            sink = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) if gz
                    else zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False))
            with sink:
                buf = []
                for line in lines_iter:
                    buf.append(line)
                    if len(buf) >= 20000:
                        sink.write("".join(buf).encode())
                        buf.clear()
                sink.write("".join(buf).encode())
        manifest[rel] = count

    span = JAN24[1] - JAN24[0]
    sub_ids, sub_subs = [], []
    rs_t = ('{"id":"%s","author":"%s","title":"%s","selftext":"%s","created_utc":%d,"subreddit":"%s",'
            '"score":%d,"num_comments":%d,"is_self":true,"distinguished":null,'
            '"permalink":"/r/%s/comments/%s/","url":"https://www.reddit.com/r/%s/comments/%s/"}\n')

    def submissions(lo: int, hi: int):
        for i in range(lo, hi):
            a = rng.randrange(n_users)
            sid, sr = _b36(int("18vh000", 36) + 3 * i + rng.randrange(3)), people[a % 500].hobby[1]
            sub_ids.append(sid)
            sub_subs.append(sr)
            author, e = "[deleted]" if rng.random() < 0.02 else authors[a], rng.randrange(len(EVENTS))
            yield rs_t % (sid, author, titles[a % 500][e], text_for(a, 3, 6, e), JAN24[0] + i * span // n_rs,
                          sr, rng.randint(0, 300), rng.randint(0, 60), sr, sid, sr, sid)

    rc_t = ('{"id":"%s","author":"%s","body":"%s","created_utc":%d,"link_id":"t3_%s","parent_id":"%s",'
            '"subreddit":"%s","score":%d,"distinguished":null}\n')

    def comments(lo: int, hi: int):
        prev_cid, prev_j = None, 0
        for i in range(lo, hi):  # comment i sits under a submission posted before it
            a, j = rng.randrange(n_users), rng.randrange(max(1, n_rs * i // n_rc))
            cid, u = _b36(int("kfz0000", 36) + 5 * i + rng.randrange(5)), rng.random()
            if u < 0.05 and prev_cid:  # a reply to the previous comment, in its thread
                j, parent = prev_j, f"t1_{prev_cid}"
            else:
                parent = f"t3_{sub_ids[j]}"
            prev_cid, prev_j = cid, j
            body = SHORT[i % 4] if 0.05 <= u < 0.1 else text_for(a, 2, 5, rng.randrange(len(EVENTS)))
            yield rc_t % (cid, authors[a], body, JAN24[0] + i * span // n_rc, sub_ids[j], parent,
                          sub_subs[j], rng.randint(0, 100))

    for f in range(rs_files):
        lo, hi = n_rs * f // rs_files, n_rs * (f + 1) // rs_files
        dump(f"reddit/RS_synth_{f:03d}.zst", submissions(lo, hi), hi - lo)
    for f in range(rc_files):
        lo, hi = n_rc * f // rc_files, n_rc * (f + 1) // rc_files
        dump(f"reddit/RC_synth_{f:03d}.zst", comments(lo, hi), hi - lo)

    az_users = [(a, "A" + "".join(rng.choice(ALNUM) for _ in range(27))) for a in range(max(1, n_az // 10))]
    az_items = [("B0" + "".join(rng.choice(ALNUM) for _ in range(8)), h[2])
                for h in (HOBBIES[i % len(HOBBIES)] for i in range(max(1, n_az // 25)))]
    az_t = ('{"rating": %d.0, "title": "%s", "text": "%s", "images": [], "asin": "%s", "parent_asin": "%s", '
            '"user_id": "%s", "timestamp": %d, "helpful_vote": %d, "verified_purchase": %s}\n')

    def reviews():
        for i in range(n_az):
            a, uid = az_users[rng.randrange(len(az_users))]
            asin, product = az_items[rng.randrange(len(az_items))]
            text = " ".join(rng.sample(revs[a % 500], rng.randint(2, 4))).replace("{product}", product) + " " + detail()
            if rng.random() < 0.05:
                text = SHORT[6]
            yield az_t % (rng.choice((5, 5, 4, 4, 3, 1)), "Solid value", text, asin, asin, uid,
                          T_LO * 1000 + i * (T_HI - T_LO) * 1000 // max(1, n_az), rng.randint(0, 9),
                          "true" if rng.random() < 0.9 else "false")

    dump("amazon/reviews_2023.jsonl.gz", reviews(), n_az, gz=True)
    log.info("synthetic corpus: %d events in %d files, %.1f s under %s", n_events, len(manifest),
             time.perf_counter() - t0, out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m demo.sample_data OUT_DIR [--seed N] [--users N] [--events N]``."""
    ap = argparse.ArgumentParser(prog="python -m demo.sample_data", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=30, help="users per platform in the sample")
    ap.add_argument("--events", type=int, default=0, help="write a synthetic corpus of N events instead")
    ap.add_argument("--files", type=int, default=8, help="Reddit files of the synthetic corpus")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.events:
        manifest = write_synthetic_corpus(args.out_dir, args.events, args.seed, args.files)
    else:
        manifest = write_sample(args.out_dir, args.seed, args.users)
    for rel, n in manifest.items():
        log.info("%9d  %s", n, rel)


if __name__ == "__main__":
    main()
