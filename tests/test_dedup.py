"""Exact and MinHash-LSH dedup: kernels against datasketch, candidate verification, golden counts on a
planted corpus, determinism across shardings, scope, incremental mode."""
from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasketch import MinHash

from core import schema as S
from core.storage import RunRoot
from processing.curate_stage import run as run_curate
from processing.dedup import (
    band_keys,
    chain_edges,
    estimated_jaccard,
    optimal_bands_rows,
    pack_signatures,
    s_curve,
    s_curve_text,
    shingle_hashes,
    signatures,
    unpack_signatures,
    verified_edges,
)
from processing.components import (U, components, directed, local_stars, neighbourhoods, round_bound, star_edges,
                                   star_round, unsettled)
from processing.dedup_stage import dedup_rows, DedupRowWriter, group_order, load_clusters, WORK
from processing.settings import DedupConfig
from processing.words import words
from ray_jobs.config import parse_config

WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue side "
         "kind head house service friend father power hour game line end member law car city community name team "
         "minute idea kid body information back parent face others level office door health person art war history "
         "party result change morning reason research girl guy moment air teacher force education garden kitchen "
         "dinner weekend brother sister coffee bread river mountain train letter music movie song dog cat winter "
         "summer holiday doctor nurse market street bridge window table chair phone picture paper class lesson").split()


def doc(rng: random.Random, n: int = 120) -> str:
    return "I " + " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def edit(rng: random.Random, text: str, k: int) -> str:
    words = text.split()
    for i in rng.sample(range(1, len(words) - 1), k):
        words[i] = rng.choice(WORDS) + "s"
    return " ".join(words)


def planted() -> tuple[list[tuple[str, str]], dict]:
    """(user, text) rows with planted clusters, and the expected outcome."""
    rng = random.Random(7)
    rows = [(f"u{i}", doc(rng)) for i in range(30)]  # unrelated documents
    base0, base1 = rows[0][1], rows[1][1]
    rows += [("c1", base0), ("c2", base0.upper()), ("c3", base0.replace(".", "!!"))]  # exact after normalisation
    rows += [(f"n{i}", edit(rng, base1, 1 + i % 2)) for i in range(4)]  # near copies: 1-2 word edits of 120
    bot = doc(rng)
    rows += [(f"bot{i}", bot.replace("I ", f"Hello {name}, I ", 1))  # templated bot posts
             for i, name in enumerate(["Ann", "Bob", "Cy", "Dee", "Eve", "Fay"])]
    rows += [(f"s{i}", "thanks for sharing this") for i in range(3)] + [("s9", "thanks for sharing that")]
    return rows, {"exact_duplicate": 3 + 2, "near_duplicate": 4 + 5, "sizes": [3, 4, 5, 6]}


def write_reviews(path, rows: list[tuple[str, str]], ts0: int = 1_600_000_000_000) -> None:
    with open(path, "w") as f:
        for i, (user, text) in enumerate(rows):
            f.write(json.dumps({"user_id": user, "parent_asin": f"item{i}", "rating": 5.0, "text": text,
                                "timestamp": ts0 + i * 1000}) + "\n")


def config(tmp_path, raw: list, run: str, **dedup) -> dict:
    return {"run_root": str(tmp_path / run), "salt": "t",
            "curate": {"inputs": [{"path": str(p), "format": "amazon_2023"} for p in raw],
                       "language": {"enabled": False},
                       "amazon": {"require_item_title": False, "top_item_fraction": 1.0, "user_k": 1, "item_k": 1,
                                  "min_history": 1, "min_words": 1},
                       "dedup": {"shingle_size": 5, **dedup}}}


def outcome(run_root: str) -> tuple[Counter, dict[str, str], list[int]]:
    root = RunRoot(run_root)
    rej = root.read_parquet("rejects", schema=S.REJECT_SCHEMA)
    ev = root.read_parquet("events", schema=S.EVENT_SCHEMA)
    reasons = Counter(rej.filter(pc.equal(rej[S.STAGE], "dedup"))[S.REASON].to_pylist())
    clusters = dict(zip(ev[S.EVENT_ID].to_pylist(), ev[S.DUP_CLUSTER].to_pylist()))
    sizes = sorted(n for e, c, n in zip(ev[S.EVENT_ID].to_pylist(), ev[S.DUP_CLUSTER].to_pylist(),
                                        ev[S.DUP_CLUSTER_SIZE].to_pylist()) if n > 1)
    return reasons, clusters, sizes


def test_signatures_equal_datasketch():
    cfg = DedupConfig()
    texts = words(pa.array(["The quick brown fox jumps over the lazy dog, again and again.",
                                "a b c d e f g h", "too short"]))
    sig, has = signatures(texts, cfg)
    hv, off = shingle_hashes(texts, cfg)
    assert has.tolist() == [True, True, False]
    for i in (0, 1):
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=int)
        m.update_batch([int(h) for h in hv[off[i]:off[i + 1]]])
        assert np.array_equal(m.hashvalues, sig[i])


def test_short_texts_rule():
    texts = words(pa.array(["thanks for sharing this"]))
    assert not signatures(texts, DedupConfig())[1][0]  # exact-only by default
    assert signatures(texts, DedupConfig(short_texts="char_ngrams"))[1][0]


def test_chain_edges_cap():
    groups = pa.array([1, 1, 1, 1, 1, 2, 2, 3], pa.uint64())
    members = pa.array(["e", "d", "c", "b", "a", "x", "y", "z"])
    edges, skipped = chain_edges(groups, members, cap=3)
    assert edges.to_pylist() == [{"a": "a", "b": "b"}, {"a": "b", "b": "c"}, {"a": "x", "b": "y"}] and skipped == 2


def _union_find(pairs: list[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = sorted((find(a), find(b)))
        parent[rb] = ra
    return {x: find(x) for x in parent}


@pytest.mark.parametrize("n", [1, 3, 8])
def test_partitioned_components_equal_union_find(n):
    """Long chains (the exact step's k copies), stars, a random sparse graph and earlier-run ids ("\x00"
    first): the rounds find the same components, rooted at the smallest member, within the bound."""
    rng = random.Random(n)
    chain = [f"c{i:05d}" for i in range(1500)]
    rng.shuffle(chain)
    pairs = list(zip(chain, chain[1:]))
    pairs += [("s0000", f"s{i:04d}") for i in range(1, 300)] + [(f"t{i:04d}", "t9999") for i in range(300)]
    nodes = [f"r{i:04d}" for i in range(3000)] + ["\x00old1", "\x00old2"]
    pairs += [(rng.choice(nodes), rng.choice(nodes)) for _ in range(2500)] + [("a", "a")]
    edges = pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]})
    labels, rounds = components(edges, n)
    got = dict(zip(labels["member"].to_pylist(), labels["root"].to_pylist()))
    linked = {x for a, b in pairs if a != b for x in (a, b)}  # a self loop links nothing
    assert got == {m: r for m, r in _union_find(pairs).items() if m in linked}
    assert rounds <= round_bound(len(pairs))


def test_a_round_over_chunks_equals_the_round_in_memory():
    """The partitioned step reads a partition in chunks: neighbourhoods merged across chunks, then each
    chunk's star edges (a node's edges split over chunks) give the same round as the whole partition."""
    rng = random.Random(7)
    nodes = [f"n{i:04d}" for i in range(400)]
    pairs = [("n0000", n) for n in nodes[1:200]] + [(rng.choice(nodes), rng.choice(nodes)) for _ in range(900)]
    edges = directed(pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}))
    edges = edges.take(pa.array(rng.sample(range(edges.num_rows), edges.num_rows)))  # a node's edges in many chunks
    chunks = [edges.slice(i, 97) for i in range(0, edges.num_rows, 97)]
    hood = neighbourhoods(iter(chunks), merge_rows=50)
    assert hood.sort_by(U).to_pylist() == neighbourhoods([edges]).sort_by(U).to_pylist()
    for large in (True, False):
        whole, n_unsettled = star_round(edges, large)
        parts = [star_edges(pa.table({U: pa.array([], pa.string()), "v": pa.array([], pa.string())}), hood, large, True),
                 *(star_edges(c, hood, large, False) for c in chunks)]
        assert {tuple(r.values()) for p in parts for r in p.to_pylist()} == {tuple(r.values()) for r in whole.to_pylist()}
        assert unsettled(hood) == n_unsettled > 0


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    wa, wb = words(pa.array([a, b])).to_pylist()
    sa, sb = ({tuple(w[i:i + n]) for i in range(len(w) - n + 1)} for w in (wa, wb))
    return len(sa & sb) / len(sa | sb)


def shared_bands(texts: list[str], cfg: DedupConfig) -> set[int]:
    """Bands whose keys are equal for the two texts."""
    sig, _ = signatures(words(pa.array(texts)), cfg)
    keys = band_keys(sig, cfg, np.zeros(2, np.uint64))
    return set(np.flatnonzero(keys[0] == keys[1]).tolist())


def near_edges(texts: list[str], cfg: DedupConfig, ids: list[str] | None = None) -> set[tuple[str, str]]:
    """What near_step links for these texts, all in one partition: index rows -> verified_edges."""
    ids = ids or [f"e{i}" for i in range(len(texts))]
    events = pa.table({S.EVENT_ID: ids, S.USER_ID: ["u"] * len(texts), S.TITLE: pa.nulls(len(texts), pa.string()),
                       S.TEXT: texts})
    rows = dedup_rows(events, cfg.model_copy(update={"num_partitions": 1}))
    rows = rows.filter(pc.greater_equal(rows[S.BAND], 0))
    edges, _ = verified_edges(rows[S.KEY], rows[S.EVENT_ID], rows["sig"], cfg.threshold, cfg.signature_bits,
                              cfg.max_bucket_size)
    return set(zip(edges["a"].to_pylist(), edges["b"].to_pylist()))


def test_packed_signatures_and_estimate():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 1 << 32, (3, 112), dtype=np.uint64).astype(np.uint32)
    sig[1, :56] = sig[0, :56]  # half the values equal: Jaccard estimate 0.5
    for bits in (4, 8, 16, 32):
        packed = pack_signatures(sig, bits)
        assert packed.type.byte_width == 112 * bits // 8
        values = unpack_signatures(packed, 112, bits)
        assert np.array_equal(unpack_signatures(packed.slice(1, 2), 112, bits), values[1:])
        assert np.array_equal(unpack_signatures(pa.chunked_array([packed.slice(0, 1), packed.slice(1, 2)]), 112, bits,
                                                rows=np.array([2, 0, 2])), values[[2, 0, 2]])
        empty = packed.slice(0, 0)
        assert np.array_equal(unpack_signatures(pa.chunked_array([empty, packed.slice(0, 2), empty, packed.slice(2, 1)]), 112,
                                                bits), values)
        est = estimated_jaccard(values[[0, 0]], values[[1, 2]], bits)
        assert abs(est[0] - 0.5) < (0.12 if bits == 4 else 0.05) and abs(est[1]) < (0.1 if bits == 4 else 0.03)
        assert estimated_jaccard(values[:1], values[:1], bits)[0] == 1.0


def test_verification_links_a_pair_the_old_banding_misses():
    """A copy with ~5% of its words edited (Jaccard ~0.6 on word 5-grams): under the old unverified
    16 x 7 banding it shares no band with its original; the lower candidate banding makes it a
    candidate and verification links it. A light edit (Jaccard ~0.9) is linked too."""
    rng = random.Random(5)
    old = DedupConfig(bands=16, rows=7, verify=False)
    cfg = DedupConfig()
    found = None
    for _ in range(200):
        base = doc(rng, 200)
        copy = edit(rng, base, 11)
        j = shingle_jaccard(base, copy)
        if cfg.threshold + 0.05 <= j <= 0.7 and not shared_bands([base, copy], old) and shared_bands([base, copy], cfg):
            found = (base, copy, j)
            break
    assert found, "no such pair in 200 draws"
    base, copy, j = found
    assert near_edges([base, copy], cfg) == {("e0", "e1")}
    light = edit(rng, base, 2)
    assert shingle_jaccard(base, light) > 0.85 and near_edges([base, light], cfg) == {("e0", "e1")}


def test_candidates_below_threshold_are_not_linked():
    """Pairs sharing an LSH bucket but under the threshold are not linked: alone, or as the bucket's
    first member (the head), where the true pair behind it still links in the next round."""
    rng = random.Random(9)
    cfg = DedupConfig()
    found = None
    for _ in range(500):
        base = doc(rng, 200)
        far = edit(rng, base, 60)  # ~30% of the words replaced: Jaccard ~0.1
        if shingle_jaccard(base, far) < cfg.threshold - 0.15 and shared_bands([base, far], cfg):
            found = (base, far)
            break
    assert found, "no candidate pair below the threshold in 500 draws"
    base, far = found
    assert near_edges([base, far], cfg) == set()
    keys = band_keys(signatures(words(pa.array([base, far])), cfg)[0], cfg, np.zeros(2, np.uint64))
    shared = keys[0] == keys[1]
    chained, _ = chain_edges(pa.array(keys[:, shared].T.reshape(-1)), pa.array(["e0", "e1"] * int(shared.sum())),
                             cap=10)
    assert chained.num_rows > 0  # the S-curve alone would have linked them
    # `far` sorts first (the head of every shared bucket); base and its light copy still link.
    twin = edit(rng, base, 2)
    assert near_edges([far, base, twin], cfg, ids=["a", "b", "c"]) == {("b", "c")}


def test_verified_edges_are_deterministic():
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 1 << 32, (60, 112), dtype=np.uint64).astype(np.uint32)
    for i in range(1, 60, 3):  # pairs and triples of near-equal signatures in shared buckets
        sigs[i] = np.where(rng.random(112) < 0.8, sigs[i - 1], sigs[i])
    packed = pack_signatures(sigs, 8)
    values = unpack_signatures(packed, 112, 8)
    groups = ((np.arange(60) // 3) % 8).astype(np.uint64)  # each bucket: several pairs and unrelated rows
    members = [f"m{i:02d}" for i in range(60)]
    edges, counts = verified_edges(pa.array(groups), pa.array(members), packed, 0.45, 8, 1000)
    order = rng.permutation(60)
    again, counts2 = verified_edges(pa.array(groups[order]), pa.array([members[i] for i in order]),
                                    packed.take(pa.array(order)), 0.45, 8, 1000)
    assert edges.to_pylist() == again.to_pylist() and counts == counts2
    assert all(a < b for a, b in zip(edges["a"].to_pylist(), edges["b"].to_pylist()))
    ia, ib = ([int(m[1:]) for m in edges[c].to_pylist()] for c in ("a", "b"))
    assert edges.num_rows >= 10 and (estimated_jaccard(values[ia], values[ib], 8) >= 0.45).all()
    assert (groups[ia] == groups[ib]).all()  # links stay within a bucket
    skip = np.isin(np.arange(60), ia[:3])  # skipped rows (secondary copies) take no part: as if filtered out
    left = np.flatnonzero(~skip)
    without, _ = verified_edges(pa.array(groups), pa.array(members), packed, 0.45, 8, 1000, skip=skip)
    filtered, _ = verified_edges(pa.array(groups[left]), pa.array([members[i] for i in left]),
                                 packed.take(pa.array(left)), 0.45, 8, 1000)
    assert without.to_pylist() == filtered.to_pylist() and without.num_rows < edges.num_rows


def test_index_row_groups_hold_one_pass(tmp_path):
    """The index writer puts each pass's bands (and the exact rows) in their own row groups, with the
    signature on every band row, so a near task's band filter skips the other passes' row groups."""
    import pyarrow.parquet as pq

    rng = random.Random(2)
    cfg = DedupConfig(num_partitions=2, bands_per_pass=7)
    texts = [doc(rng) for _ in range(40)]
    events = pa.table({S.EVENT_ID: [f"e{i}" for i in range(40)], S.USER_ID: ["u"] * 40,
                       S.TITLE: pa.nulls(40, pa.string()), S.TEXT: texts})
    writer = DedupRowWriter(RunRoot(str(tmp_path)), "amazon", "s0")
    writer.write(dedup_rows(events.slice(0, 25), cfg))
    writer.write(dedup_rows(events.slice(25), cfg))
    writer.close()
    files = sorted(tmp_path.rglob("*.parquet"))
    assert len(files) == 2
    total = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        band = meta.schema.names.index(S.BAND)
        for i in range(meta.num_row_groups):
            st = meta.row_group(i).column(band).statistics
            assert (st.min < 0) == (st.max < 0) and (st.min < 0 or st.min // 7 == st.max // 7)
        t = pq.read_table(f)
        assert t.schema.names == [S.BAND, S.KEY, S.EVENT_ID, "sig"]
        assert t.filter(pc.greater_equal(t[S.BAND], 0))["sig"].null_count == 0
        total += t.num_rows
    assert total == 40 * (1 + cfg.bands)


def test_config_validation_and_s_curve_text():
    with pytest.raises(ValueError, match="at most num_perm"):
        DedupConfig(bands=40, rows=3)
    with pytest.raises(ValueError, match="must equal num_perm"):
        DedupConfig(bands=37, rows=3, verify=False)
    with pytest.raises(ValueError, match="even num_perm"):
        DedupConfig(num_perm=111, bands=37, rows=3, signature_bits=4)
    text = s_curve_text(DedupConfig())
    assert "candidate threshold" in text and "verified at estimated Jaccard" in text
    assert "verified" not in s_curve_text(DedupConfig(bands=16, rows=7, verify=False))


def test_s_curve_and_optimal_params():
    curve = dict(s_curve(14, 8))
    assert curve[0.5] < 0.06 and curve[0.9] > 0.999
    b, r = optimal_bands_rows(0.8, 112)
    assert b * r <= 112


def test_golden_planted_corpus(tmp_path):
    rows, expected = planted()
    write_reviews(tmp_path / "r.jsonl", rows)
    stats = run_curate(parse_config(config(tmp_path, [tmp_path / "r.jsonl"], "run")), use_ray=False)
    reasons, clusters, sizes = outcome(str(tmp_path / "run"))
    assert reasons == {"exact_duplicate": expected["exact_duplicate"], "near_duplicate": expected["near_duplicate"]}
    assert sizes == expected["sizes"]  # one kept copy per cluster, with its cluster size
    assert stats["platforms"]["amazon"]["rejected"]["dedup"] == dict(reasons)
    # The kept copy is the earliest (all quality scores are equal): the original posts.
    assert sum(1 for e, c in clusters.items() if c != e) == 0
    assert stats["platforms"]["amazon"]["kept"] == len(rows) - sum(reasons.values())


@pytest.mark.slow
def test_same_clusters_across_shardings(tmp_path, ray_cluster):
    rows, _ = planted()
    random.Random(3).shuffle(rows)
    write_reviews(tmp_path / "all.jsonl", rows)
    for i in range(3):  # the same rows split over three files
        write_reviews(tmp_path / f"part{i}.jsonl", rows[i::3], ts0=1_600_000_000_000 + i * 10)
    a = config(tmp_path, [tmp_path / "all.jsonl"], "one", num_partitions=1, bands_per_pass=14)
    b = config(tmp_path, [tmp_path / "all.jsonl"], "many", num_partitions=7, bands_per_pass=3)
    b["curate"]["num_user_buckets"] = 5
    run_curate(parse_config(a), use_ray=False)
    run_curate(parse_config(b), use_ray=True)
    assert outcome(str(tmp_path / "one")) == outcome(str(tmp_path / "many"))
    c = config(tmp_path, [tmp_path / f"part{i}.jsonl" for i in range(3)], "split", num_partitions=3)
    run_curate(parse_config(c), use_ray=True)
    reasons_c, _, sizes_c = outcome(str(tmp_path / "split"))
    assert (reasons_c, sizes_c) == outcome(str(tmp_path / "one"))[::2]


def test_user_scope(tmp_path):
    rows = [("a", doc(random.Random(1))), ("b", doc(random.Random(1))), ("a", doc(random.Random(1)) + " Yes.")]
    write_reviews(tmp_path / "r.jsonl", rows)
    run_curate(parse_config(config(tmp_path, [tmp_path / "r.jsonl"], "corpus")), use_ray=False)
    run_curate(parse_config(config(tmp_path, [tmp_path / "r.jsonl"], "user", scope="user")), use_ray=False)
    assert sum(outcome(str(tmp_path / "corpus"))[0].values()) == 2
    assert outcome(str(tmp_path / "user"))[0] == {"near_duplicate": 1}  # only user a's own repeat


def test_incremental_against_earlier_run(tmp_path):
    rng = random.Random(11)
    old_rows = [(f"o{i}", doc(rng)) for i in range(10)]
    write_reviews(tmp_path / "old.jsonl", old_rows)
    run_curate(parse_config(config(tmp_path, [tmp_path / "old.jsonl"], "old")), use_ray=False)
    new_rows = [("n1", edit(rng, old_rows[3][1], 1)), ("n2", old_rows[5][1]), ("n3", doc(rng))]
    write_reviews(tmp_path / "new.jsonl", new_rows, ts0=1_700_000_000_000)
    cfg = config(tmp_path, [tmp_path / "new.jsonl"], "new", previous_runs=[str(tmp_path / "old")])
    run_curate(parse_config(cfg), use_ray=False)
    reasons, clusters, _ = outcome(str(tmp_path / "new"))
    assert reasons == {"near_duplicate": 1, "exact_duplicate": 1}
    rej = RunRoot(str(tmp_path / "new")).read_parquet("rejects", schema=S.REJECT_SCHEMA)
    old_ids = RunRoot(str(tmp_path / "old")).read_parquet("events", schema=S.EVENT_SCHEMA)[S.EVENT_ID].to_pylist()
    details = rej.filter(pc.equal(rej[S.STAGE], "dedup"))[S.DETAIL].to_pylist()
    assert all(d.split()[0].removeprefix("cluster=") in old_ids for d in details)  # clustered with old events
    assert list(clusters.values()) == list(clusters)  # the new unique event is kept, alone
    bad = config(tmp_path, [tmp_path / "new.jsonl"], "bad", previous_runs=[str(tmp_path / "old")], num_perm=64,
                 bands=8, rows=8)
    with pytest.raises(ValueError, match="other settings"):
        run_curate(parse_config(bad), use_ray=False)


def test_normalize_keeps_letters_of_every_script_and_no_empty_words():
    got = words(pa.array(["Café naïve — 東京 Привет мир, ok", "Great product.", "...Great product"])).to_pylist()
    assert got == [["café", "naïve", "東京", "привет", "мир", "ok"], ["great", "product"], ["great", "product"]]


def test_clusters_of_a_run_root_from_before_the_partitioned_clusters_still_load(tmp_path):
    """An earlier run (`dedup.previous_runs`) written with one clusters.parquet per platform."""
    root = RunRoot(str(tmp_path))
    old = pa.table({S.EVENT_ID: ["b", "a"], S.DUP_CLUSTER: ["a", "a"], S.DUP_CLUSTER_SIZE: pa.array([2, 2], pa.int32()),
                    S.REASON: ["near_duplicate", None]}, schema=S.CLUSTER_SCHEMA)
    root.write_parquet(f"{WORK}/amazon/clusters.parquet", old)
    assert load_clusters(root, "amazon").to_pylist() == old.sort_by([(S.EVENT_ID, "ascending")]).to_pylist()
    assert load_clusters(root, "reddit").num_rows == 0


def test_group_order_is_the_stable_order_by_partition_then_pass():
    rng = np.random.default_rng(0)
    for n_parts in (8, 5000):  # one 16-bit radix key; past 16 bits, lexsort
        part = rng.integers(0, n_parts, 20000).astype(np.int32)
        passes = rng.integers(-1, 5, 20000).astype(np.int16)
        assert np.array_equal(group_order(part, passes), np.lexsort((passes, part)))
    rows = dedup_rows(pa.table({S.EVENT_ID: ["a", "b"], S.USER_ID: ["u", "v"], S.TITLE: [None, "t"],
                                S.TEXT: ["one two three four five six seven", "one two three four five six eight"]}),
                      DedupConfig(num_partitions=3))
    key = rows["part"].to_numpy().astype(np.int64) * 100 + rows["pass"].to_numpy()
    assert rows.num_rows == 2 + 2 * 30 and (np.diff(key) >= 0).all()


def test_local_stars_keep_the_components_as_stars_centred_at_their_smallest_node():
    rng = random.Random(5)
    nodes = [f"n{i:03d}" for i in range(300)]
    pairs = [tuple(rng.sample(nodes, 2)) for _ in range(260)] + [("n001", "n001")]
    pairs += [(f"c{i:02d}", f"c{i + 1:02d}") for i in range(40)]  # a chain of 41, as exact_step writes
    edges = pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]})
    stars = local_stars(edges)
    want, _ = components(edges, 3)
    got, rounds = components(stars, 3)
    assert sorted(got.to_pylist(), key=str) == sorted(want.to_pylist(), key=str)
    root = dict(zip(want["member"].to_pylist(), want["root"].to_pylist()))
    assert all(root[b] == a < b for a, b in zip(stars["a"].to_pylist(), stars["b"].to_pylist()))
    assert stars.num_rows == len(root) - len(set(root.values())) and rounds == 1
    assert local_stars(edges.slice(0, 0)).num_rows == 0
