"""PII scrubbing: recall per type on a generated labelled set, false positives on real posts, cost.

1. recall: bench/pii_set.py's Faker set (six locales, issue 16's quoted misses); an identifier
   counts as removed when placeholders cover >= 90% of its letters and digits.
2. precision: a seeded sample of real events (Reddit, Blogger, Amazon under ../shared/data, read
   with the project's readers and cleaned as curate does); every replacement is listed, and each
   is judged by bench/pii_review.json (reviewed by hand: "tp" or "fp"; an unreviewed one counts
   as a false positive). Prints the share of events changed by a false positive.
3. cost: microseconds per event of the PII step against the scrubber of a git ref (default
   `2ce6ada`, the last hand-written regex scrubber, loaded from git into this process) on the same
   cleaned texts.

Usage: python bench/pii.py [--per-type 40] [--events 300] [--seed 16] [--baseline-ref 2ce6ada]
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.pii_set import generate, LOCALES, TYPES  # noqa: E402
from processing import pii  # noqa: E402
from processing.cleaning import clean_text, CleaningOptions  # noqa: E402

log = logging.getLogger("bench.pii")
DATA = os.path.join(ROOT, "..", "shared", "data")
REVIEW = os.path.join(ROOT, "bench", "pii_review.json")
SOURCES = (("reddit_pushshift/*.zst", "reddit_pushshift"), ("blog_authorship/*.xml", "blogger_xml"),
           ("amazon_reviews_2018/*.json", "amazon_2018"))
TARGET = {t: 0.99 for t in TYPES} | {"address": 0.90}


def covered(span: tuple[int, int, str], found: list[pii.Span], text: str) -> bool:
    start, end, _ = span
    alnum = [i for i in range(start, end) if text[i].isalnum()]
    hit = sum(any(f.start <= i < f.end for f in found) for i in alnum)
    return hit >= 0.9 * len(alnum)


def recall(per_type: int, seed: int) -> tuple[dict, dict, list]:
    samples = generate(per_type, seed)
    by_type: dict[str, list[int]] = {}
    by_locale: dict[tuple[str, str], list[int]] = {}
    misses = []
    for s in samples:
        found = pii.resolve(pii.detect(s.text))
        for span in s.spans:
            ok = covered(span, found, s.text)
            for key, d in ((span[2], by_type), ((span[2], s.locale), by_locale)):
                d.setdefault(key, [0, 0])[0] += ok
                d[key][1] += 1
            if not ok:
                misses.append((span[2], s.locale, s.text[span[0]:span[1]]))
    return by_type, by_locale, misses


def real_events(n: int, seed: int) -> list[dict]:
    """A seeded sample of n events, equal parts per source, read with the project's readers."""
    from processing.readers import read_file
    from processing.readers.base import Event, ReadContext

    per_source = []
    for pattern, fmt in SOURCES:
        events = []
        for uri in sorted(glob.glob(os.path.join(DATA, pattern))):
            for rec in read_file(uri, fmt, ReadContext(uri, "bench")):
                if isinstance(rec, Event) and (rec.get("text") or "").strip() not in ("", "[removed]", "[deleted]"):
                    events.append(rec)
        per_source.append(events)
    rng = random.Random(seed)
    out = []
    for i, events in enumerate(per_source):
        k = n // len(per_source) + (i < n % len(per_source))
        out += rng.sample(events, min(k, len(events)))
    return out


def load_baseline(ref: str):
    """processing/cleaning.py as of a git ref, imported as a separate module."""
    src = subprocess.run(["git", "-C", ROOT, "show", f"{ref}:processing/cleaning.py"], check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "cleaning_baseline.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("cleaning_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def timed(fn, texts: list[str], repeat: int = 5) -> float:
    """CPU microseconds per text (best of `repeat` passes; CPU time, as the machine may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for t in texts:
            fn(t)
        best = min(best, time.process_time() - t0)
    return best / len(texts) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-type", type=int, default=40, help="samples per (type, locale)")
    ap.add_argument("--events", type=int, default=300, help="real events to review")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--baseline-ref", default="2ce6ada",
                    help="git ref of the scrubber to compare cost with (default: the last hand-written regex scrubber)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    by_type, by_locale, misses = recall(args.per_type, args.seed)
    print(f"== recall on the generated set ({args.per_type} per type and locale, seed {args.seed})")
    print(f"{'type':<12} {'removed':>8} {'of':>6} {'recall':>7} {'target':>7}  " + " ".join(f"{loc:>6}" for loc in LOCALES))
    for t in TYPES:
        k, n = by_type[t]
        cells = " ".join(f"{by_locale[(t, loc)][0] / by_locale[(t, loc)][1]:>6.2f}" if (t, loc) in by_locale
                         else f"{'-':>6}" for loc in LOCALES)
        flag = "ok" if k / n >= TARGET[t] else "BELOW"
        print(f"{t:<12} {k:>8} {n:>6} {k / n:>7.3f} {TARGET[t]:>7.2f}  {cells}  {flag}")
    print(f"misses ({len(misses)}):")
    for t, loc, s in misses:
        print(f"  {t:<12} {loc:<6} {s!r}")

    events = real_events(args.events, args.seed)
    review = json.load(open(REVIEW)) if os.path.exists(REVIEW) else {}
    opts = CleaningOptions(scrub_pii=False, max_removed_fraction=1.0)
    texts = [clean_text(e["text"], opts).text for e in events]
    print(f"\n== replacements in {len(events)} real events (seed {args.seed}); verdicts from {REVIEW}")
    fp_events, n_repl, verdicts = set(), 0, {"tp": 0, "fp": 0, "unreviewed": 0}
    for e, text in zip(events, texts):
        for s in pii.resolve(pii.detect(text)):
            n_repl += 1
            value = text[s.start:s.end]
            key = f"{s.kind}|{value}"
            verdict = review.get(key, "unreviewed")
            verdicts[verdict] += 1
            if verdict != "tp":
                fp_events.add(e["event_id"])
            ctx = text[max(0, s.start - 40):s.end + 40].replace("\n", " ")
            print(f"  {verdict:<10} {e['platform']:<8} {s.kind:<11} {value!r:<40} …{ctx}…")
    print(f"replacements: {n_repl} ({verdicts['tp']} tp, {verdicts['fp']} fp, {verdicts['unreviewed']} unreviewed)")
    print(f"events changed by a false positive: {len(fp_events)}/{len(events)} = "
          f"{len(fp_events) / max(1, len(events)):.2%} (target < 0.5%)")

    base = load_baseline(args.baseline_ref)
    new_us = timed(pii.scrub, texts)
    old_us = timed(base.scrub_pii, texts)
    chars = sum(map(len, texts)) / max(1, len(texts))
    print(f"\n== cost on the same {len(texts)} cleaned events ({chars:.0f} characters on average)")
    print(f"PII step: {new_us:.1f} CPU µs/event; scrubber at {args.baseline_ref}: {old_us:.1f} CPU µs/event "
          f"({new_us / old_us:.2f}x)")


if __name__ == "__main__":
    main()
