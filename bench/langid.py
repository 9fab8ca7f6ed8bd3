"""Language ID on a prefix of each text: agreement with the whole-text decision, and its cost.

Reads every real sample of ../shared/data (the inputs of configs/real_data.yaml), takes the rows that
reach language ID in curation (rules, cleaning and PII scrubbing applied: `process_batch` with language
ID off) and the title + text curation sends to fastText, then for each prefix length prints, per
platform and overall, the share of rows whose keep/reject decision (`curate.language`: top language in
`keep` with score >= `min_score`) equals the decision on the whole text, and the microseconds per text
of `processing.langid.identify` at that prefix, measured side by side in this process.
Usage: python bench/langid.py [--prefixes 2000,1000,500,300,200] [--repeat 3]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

log = logging.getLogger("bench.langid")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_texts(config_path: str) -> dict[str, list[str]]:
    """Per platform, the title + text of every real row that reaches language ID in curation."""
    import glob

    import pyarrow as pa
    import pyarrow.compute as pc
    import yaml

    from core import schema as S
    from processing.curate import _records_to_tables, process_batch
    from processing.readers import platform_of, read_file
    from processing.readers.base import Event, ReadContext
    from ray_jobs.config import parse_config

    data = yaml.safe_load(open(config_path))
    shared = os.path.join(REPO, "..", "shared", "data")
    data["curate"]["language"] = {"enabled": False}
    cfg = parse_config({**data, "run_root": "/tmp/unused"}).curate
    out: dict[str, list[str]] = {}
    for inp in cfg.inputs:
        pattern = inp.path.replace("../shared/data", shared)
        platform = platform_of(inp.format)
        for uri in sorted(glob.glob(pattern)):
            ctx = ReadContext(uri, "bench")
            events = [r for r in read_file(uri, inp.format, ctx) if isinstance(r, Event)]
            if not events:
                continue
            kept, _ = process_batch(_records_to_tables(events, S.READ_BATCH_SCHEMA), platform, cfg)
            both = pc.binary_join_element_wise(pc.fill_null(kept[S.TITLE], ""), pc.fill_null(kept[S.TEXT], ""), "\n")
            if kept.num_rows:
                out.setdefault(platform, []).extend(pa.chunked_array([both]).to_pylist())
    return out


def decisions(texts, max_chars, keep, min_score) -> tuple[list[bool], float]:
    """Keep/reject of each text at `max_chars`, and the seconds identify took."""
    import pyarrow as pa

    from processing.langid import identify

    t0 = time.perf_counter()
    langs, scores = identify(pa.array(texts, pa.string()), max_chars=max_chars)
    seconds = time.perf_counter() - t0
    return [lang in keep and score >= min_score for lang, score in zip(langs.to_pylist(), scores.to_pylist())], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "real_data.yaml"))
    ap.add_argument("--prefixes", default="2000,1000,500,300,200")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per prefix (the fastest is kept)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from processing.langid import load_model
    from processing.settings import LanguageConfig

    lang = LanguageConfig()
    keep, min_score = set(lang.keep), lang.min_score
    texts = real_texts(args.config)
    load_model()
    every = [t for ts in texts.values() for t in ts]
    lengths = sorted(len(t) for t in every)
    log.info("%d real rows reach language ID (%s); chars: median %d, p90 %d, max %d", len(every),
             ", ".join(f"{p} {len(ts)}" for p, ts in sorted(texts.items())), lengths[len(lengths) // 2],
             lengths[int(len(lengths) * 0.9)], lengths[-1])
    full = {p: decisions(ts, None, keep, min_score)[0] for p, ts in texts.items()}
    full_s = min(decisions(every, None, keep, min_score)[1] for _ in range(args.repeat))
    platforms = sorted(texts)
    print(f"{'prefix':>8} " + " ".join(f"{p:>10}" for p in platforms) + f" {'all':>10} {'differ':>7} {'us/text':>8} {'vs whole':>8}")
    for prefix in [int(x) for x in args.prefixes.split(",")]:
        agree, differ = {}, 0
        for p in platforms:
            got = decisions(texts[p], prefix, keep, min_score)[0]
            same = sum(a == b for a, b in zip(got, full[p]))
            agree[p], differ = same / len(got), differ + len(got) - same
        seconds = min(decisions(every, prefix, keep, min_score)[1] for _ in range(args.repeat))
        total = 1 - differ / len(every)
        print(f"{prefix:>8} " + " ".join(f"{agree[p]:>10.4f}" for p in platforms)
              + f" {total:>10.4f} {differ:>7} {seconds / len(every) * 1e6:>8.1f} {full_s / seconds:>7.2f}x")
    print(f"{'whole':>8} " + " ".join(f"{1:>10.4f}" for _ in platforms) + f" {1:>10.4f} {0:>7} "
          f"{full_s / len(every) * 1e6:>8.1f} {1:>7.2f}x")


if __name__ == "__main__":
    main()
