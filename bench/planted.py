"""A corpus with planted duplicate clusters, for the dedup benchmark (`bench/dedup.py`).

English-like posts of 50-300 words (Zipf-Mandelbrot word frequencies over common English words,
a few stock phrases and a long tail of made-up words, with commas and full stops) in blocks of
`block` documents; every planted cluster lies inside one block and each block is shuffled, so any
prefix of whole blocks is a corpus of the same make-up (the peers run on a prefix). Kinds:

  unique     a document with no planted copy
  exact      2-6 copies of a post: byte-identical, or equal after normalisation (upper case, "!" for ".")
  near-P%    an original and 1-4 copies, each with P% of its words edited (substituted, deleted or
             inserted) independently, for P in 2, 5, 10, 20
  bot        templated bot posts: a 30-150 word template with 1-2 slots filled per post (names,
             products, places), 5 to 2,500 posts per template (log-uniform)

Ground truth (`truth.npz`, in file order): `cluster` (-1 for unique documents) and `kind` (index
into KINDS). Files: `corpus.jsonl` (Amazon 2023 review lines, one per document, `timestamp`
increasing with the line number) and `manifest.json`. Generation runs blocks in a process pool.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from functools import lru_cache
from operator import itemgetter

import numpy as np

KINDS = ("unique", "exact", "near-2%", "near-5%", "near-10%", "near-20%", "bot")
NEAR_RATES = {"near-2%": 0.02, "near-5%": 0.05, "near-10%": 0.10, "near-20%": 0.20}
# Fraction of each block's documents in clusters of each kind (the rest are unique).
SHARES = {"exact": 0.05, "near-2%": 0.05, "near-5%": 0.05, "near-10%": 0.05, "near-20%": 0.05, "bot": 0.05}
VERSION = 1
TS0 = 1_600_000_000_000  # ms

COMMON = """the of and to a in is it you that he was for on are with as i his they be at one have this from or
had by not word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look more day
could go come did number sound no most people my over know water than call first who may down side been now find any
new work part take get place made live where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand port large spell add
even land here must big high such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country found answer school grow
study still learn plant cover food sun four between state keep eye never last let thought city tree cross farm hard
start might story saw far sea draw left late run don't while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often letter until mile
river car feet care second book carry took science eat room friend began idea fish mountain stop once base hear
horse cut sure watch color face wood main enough plain girl usual young ready above ever red list though feel talk
bird soon body dog family direct pose leave song measure door product black short class wind question happen
complete ship area half rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast sing listen six table travel
less morning ten simple several toward war lay against pattern slow center love person money serve appear road map
rain rule pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait plan figure
star box field rest correct able pound done beauty drive stood contain front teach week final gave green oh quick
develop ocean warm free minute strong special mind behind clear tail produce fact street inch nothing course stay
wheel full force blue object decide surface deep moon island foot system busy test record boat common gold possible
plane dry wonder laugh thousand ago ran check game shape hot miss brought heat snow tire bring yes distant fill east
paint language among price quality recommend bought works really love great product little bit honestly pretty
actually maybe probably definitely anyway stuff weekend coffee phone order shipping arrived broke return""".split()
PHRASES = ["i don't know", "to be honest", "at the end of the day", "as far as i can tell", "thank you so much",
           "in my opinion", "it turns out that", "for what it's worth", "i have to say", "a lot of people",
           "the first time", "one of the best", "would highly recommend", "does anyone know", "just my two cents",
           "let me know", "if you ask me", "on the other hand", "at least for now", "as soon as possible"]
SLOT_NAMES = ("Ann Bob Cy Dee Eve Fay Gus Hal Ida Jon Kim Lea Max Ned Oli Pam Quinn Ray Sue Tom Una Vic Wes "
              "Xan Yui Zoe Amir Bea Cato Dana Eli Finn Gia Hugo Ines Jules Kai Lina Milo Nora Omar Pia Rosa "
              "Sami Theo Uma Vera Will Yara Zed").split()
N_WORDS = 30_000  # vocabulary: common words, phrases, then made-up words
PUNCT_P = 0.09  # share of tokens that are "," or "."


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    rng = np.random.default_rng(12345)
    onsets = "b c d f g h j k l m n p r s t v w z br cl dr fl gr pl st tr sh ch th".split()
    vowels = "a e i o u ai ea ee oa ou".split()
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck"]
    words, seen = [], set(COMMON) | set(PHRASES)
    while len(COMMON) + len(PHRASES) + len(words) < N_WORDS:
        k = int(rng.integers(1, 4))
        w = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] for _ in range(k))
        w += codas[rng.integers(len(codas))]
        if w not in seen:
            seen.add(w)
            words.append(w)
    # Phrases rank among the common words, after the first 60.
    return tuple(COMMON[:60] + PHRASES + COMMON[60:] + words)


def _cdf(n: int, q: float = 2.7, s: float = 1.2) -> np.ndarray:
    p = 1.0 / (np.arange(n) + q) ** s
    return np.cumsum(p / p.sum())


class Gen:
    """Vectorised sampling of token-id arrays and their rendering to text (one per process)."""

    TABLE_BITS = 22  # inverse-CDF lookup table of 2^22 entries: every word keeps >= 4 slots

    def __init__(self):
        words = vocabulary()
        self.tokens = tuple(" " + w for w in words) + (",", ".", "\n")  # rendering is one "".join
        self.comma, self.stop, self.sep = len(words), len(words) + 1, len(words) + 2
        cdf = _cdf(len(words))
        grid = (np.arange(1 << self.TABLE_BITS) + 0.5) / (1 << self.TABLE_BITS) * cdf[-1]
        self.table = np.searchsorted(cdf, grid).astype(np.int32)
        self.slot_fill = SLOT_NAMES + [f"{w} {x}" for w in COMMON[300:340] for x in ("set", "kit", "box")]

    def plain_words(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.table[rng.integers(0, 1 << self.TABLE_BITS, n)]

    def words(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Words with commas and full stops: never two marks in a row, never a mark first."""
        ids = self.plain_words(rng, n)
        u = rng.random(n)
        mark = u < PUNCT_P
        mark[1:] &= ~mark[:-1]
        ids[mark] = np.where(u[mark] < PUNCT_P * 0.45, self.comma, self.stop)
        return ids

    def docs(self, rng: np.random.Generator, lengths: np.ndarray) -> list[np.ndarray]:
        flat = self.words(rng, int(lengths.sum()))
        docs = np.split(flat, np.cumsum(lengths)[:-1])
        for d in docs:
            if d[0] >= self.comma:
                d[0] = 0
        return docs

    def render(self, ids: np.ndarray) -> str:
        return self.render_many([ids])[0]

    def render_many(self, docs: list[np.ndarray]) -> list[str]:
        """Token ids -> posts in one join: marks attached to the word before, first letter upper case."""
        if not docs:
            return []
        sep = np.full(1, self.sep, np.int32)
        flat = np.concatenate([x for d in docs for x in (d, sep)]).tolist()
        big = "".join(itemgetter(*flat)(self.tokens))
        out = []
        for t in big.split("\n")[:len(docs)]:
            t = t.lstrip(" ,.")
            out.append(t[:1].upper() + t[1:] + ("" if t.endswith(".") else "."))
        return out

    def edit(self, rng: np.random.Generator, ids: np.ndarray, rate: float) -> np.ndarray:
        """Edit round(rate * words) positions (at least one): 60% substitute, 20% delete, 20% insert."""
        n = len(ids)
        k = max(1, int(round(rate * n)))
        pos = rng.choice(n, size=k, replace=False)
        op = rng.random(k)
        new = self.plain_words(rng, k)  # edits are words
        out = ids.copy()
        sub = pos[op < 0.6]
        out[sub] = np.where(new[op < 0.6] == out[sub], (new[op < 0.6] + 1) % self.comma, new[op < 0.6])
        keep = np.ones(n, bool)
        keep[pos[(op >= 0.6) & (op < 0.8)]] = False
        ins_pos, ins_val = pos[op >= 0.8], new[op >= 0.8]
        out = np.insert(out, ins_pos, ins_val)  # positions refer to the original array
        keep = np.insert(keep, ins_pos, True)
        return out[keep]


def _block(args: tuple[int, int, int, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One block: texts (shuffled), cluster ids (block-local, -1 unique) and kind indices."""
    seed, b, size, _ = args
    g = Gen()
    rng = np.random.default_rng([seed, b])
    ids: list[np.ndarray] = []  # token ids of the posts rendered in one go
    variant: list[int] = []  # 0 as rendered, 1 upper case, 2 "!" for "."
    cluster: list[int] = []
    kind: list[int] = []
    cid = 0

    def add(x: np.ndarray, c: int, k: str, v: int = 0) -> None:
        ids.append(x)
        variant.append(v)
        cluster.append(c)
        kind.append(KINDS.index(k))

    budget = {k: int(round(v * size)) for k, v in SHARES.items()}
    n = 0  # exact copies
    while n < budget["exact"]:
        m = int(rng.integers(2, 7))
        base = g.docs(rng, rng.integers(50, 301, 1))[0]
        for j in range(m):
            v = rng.random() if j else 0.0
            add(base, cid, "exact", 0 if v < 0.5 else 1 if v < 0.75 else 2)
        cid, n = cid + 1, n + m
    for k, rate in NEAR_RATES.items():  # near copies
        n = 0
        while n < budget[k]:
            m = int(rng.integers(2, 6))
            base = g.docs(rng, rng.integers(50, 301, 1))[0]
            add(base, cid, k)
            for _ in range(m - 1):
                add(g.edit(rng, base, rate), cid, k)
            cid, n = cid + 1, n + m
    n_unique = max(0, size - len(ids) - budget["bot"])
    for x in g.docs(rng, rng.integers(50, 301, n_unique)):  # unique documents
        add(x, -1, "unique")
    texts = g.render_many(ids)
    for i, v in enumerate(variant):
        if v:
            texts[i] = texts[i].upper() if v == 1 else texts[i].replace(".", "!")
    n = 0  # templated bot posts
    while len(texts) < size:
        m = int(min(np.exp(rng.uniform(np.log(5), np.log(2500))), max(5, size - len(texts))))
        tmpl = g.render(g.docs(rng, rng.integers(30, 151, 1))[0]).split(" ")
        slots = sorted(rng.choice(np.arange(1, len(tmpl)), size=int(rng.integers(1, 3)), replace=False).tolist())
        greet = rng.random() < 0.5
        fills = rng.integers(len(g.slot_fill), size=(m, len(slots)))
        names = rng.integers(len(SLOT_NAMES), size=m)
        for j in range(m):
            words = list(tmpl)
            for s, f in zip(slots, fills[j]):
                words[s] = g.slot_fill[int(f)]
            t = " ".join(words)
            texts.append(f"Hi {SLOT_NAMES[int(names[j])]}, {t[0].lower()}{t[1:]}" if greet else t)
            cluster.append(cid)
            kind.append(KINDS.index("bot"))
        cid += 1
    order = rng.permutation(len(texts))[:size]
    return [texts[i] for i in order], np.asarray(cluster, np.int64)[order], np.asarray(kind, np.int8)[order]


def _encode(texts: list[str], start: int, n_users: int) -> bytes:
    lines = [f'{{"user_id": "u{(start + i) % n_users:07d}", "parent_asin": "i{start + i:09d}", "rating": 5.0, '
             f'"text": {json.dumps(t)}, "timestamp": {TS0 + (start + i) * 1000}}}\n' for i, t in enumerate(texts)]
    return "".join(lines).encode()


def _block_encoded(args: tuple[int, int, int, int]) -> tuple[bytes, np.ndarray, np.ndarray]:
    texts, cluster, kind = _block(args)
    _, b, _, start = args
    return _encode(texts, start, N_USERS), cluster, kind


N_USERS = 50_000


def generate(n_docs: int, out_dir: str, seed: int = 0, block: int = 100_000, processes: int | None = None) -> dict:
    """Write corpus.jsonl, truth.npz and manifest.json under out_dir (skipped when already there)."""
    manifest_path = os.path.join(out_dir, "manifest.json")
    want = {"version": VERSION, "docs": n_docs, "seed": seed, "block": block}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            have = json.load(f)
        if {k: have.get(k) for k in want} == want:
            return have
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    blocks = [(seed, b, min(block, n_docs - s), s) for b, s in enumerate(range(0, n_docs, block))]
    clusters, kinds, offset = [], [], 0
    ctx = mp.get_context("fork")
    with ctx.Pool(processes or os.cpu_count() or 1) as pool, open(os.path.join(out_dir, "corpus.jsonl"), "wb") as f:
        for data, cluster, kind in pool.imap(_block_encoded, blocks):
            f.write(data)
            clusters.append(np.where(cluster >= 0, cluster + offset, -1))
            kinds.append(kind)
            offset += int(cluster.max()) + 1 if len(cluster) else 0
    cluster, kind = np.concatenate(clusters), np.concatenate(kinds)
    np.savez(os.path.join(out_dir, "truth.npz"), cluster=cluster, kind=kind)
    counts = {k: int((kind == i).sum()) for i, k in enumerate(KINDS)}
    manifest = {**want, "kinds": counts, "clusters": int(len(np.unique(cluster[cluster >= 0]))),
                "seconds": round(time.perf_counter() - t0, 1), "bytes": os.path.getsize(os.path.join(out_dir, "corpus.jsonl"))}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def truth(out_dir: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    z = np.load(os.path.join(out_dir, "truth.npz"))
    return z["cluster"][:limit], z["kind"][:limit]


def prefix(out_dir: str, k: int, fmt: str = "amazon") -> str:
    """The first k documents as their own file: Amazon lines (`amazon`) or DataTrove's {"id", "text"} (`datatrove`)."""
    name = f"prefix-{k}.jsonl" if fmt == "amazon" else f"datatrove-{k}/docs.jsonl"
    path = os.path.join(out_dir, name)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(os.path.join(out_dir, "corpus.jsonl"), "rb") as src, open(tmp, "wb") as dst:
        for i, line in enumerate(src):
            if i >= k:
                break
            if fmt == "amazon":
                dst.write(line)
            else:
                dst.write(json.dumps({"id": str(i), "text": json.loads(line)["text"]}).encode() + b"\n")
    os.replace(tmp, path)
    return path
