"""Quality classifiers: training on a separable synthetic fixture, scoring, per-platform thresholds, errors."""
from __future__ import annotations

import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from processing.quality import (
    LABEL,
    QualityDataError,
    fasttext_line,
    load_model,
    score,
    score_events,
    train_from_config,
    train_quality,
)
from processing.settings import QualityConfig, QualityTrainConfig
from ray_jobs.config import PipelineConfig

SMALL = dict(dim=16, bucket=20_000, epoch=10, lr=0.5, word_ngrams=2, seed=3, test_fraction=0.2)

PEOPLE = ["my mom", "my dad", "my sister", "my brother", "my grandmother", "my best friend", "my husband",
          "my wife", "my son", "my daughter", "my roommate", "my uncle"]
FEELINGS = ["nervous", "happy", "exhausted", "proud", "heartbroken", "relieved", "scared", "grateful", "lonely"]
PLACES = ["the hospital", "our old apartment", "college", "the lake house", "my first job", "a small town",
          "the night shift", "my aunt's farm", "the bus station", "high school"]
EVENTS = ["moved across the country", "lost my job", "started therapy", "learned to cook", "got divorced",
          "adopted a dog", "finished my degree", "quit drinking", "ran my first marathon", "bought a house"]
AGES = ["nineteen", "twenty two", "thirty", "forty five", "sixteen", "twenty eight"]

PRODUCTS = ["wireless earbuds", "vitamin gummies", "crypto course", "phone cases", "weight loss tea",
            "designer sunglasses", "gaming chairs", "led strips", "teeth whitening kit"]
COMPANIES = ["Acme Corp", "BrightPath Solutions", "NovaTech", "Global Staffing LLC", "PrimeLogix", "DataWave Inc."]
ROLES = ["sales associate", "warehouse picker", "remote data entry clerk", "customer service rep", "driver"]
DOMAINS = ["bit.ly", "deals4u.shop", "promo-center.net", "jobs-now.biz", "tinyurl.com", "freegift.win"]


def life_story(rng: random.Random) -> str:
    s = [f"When I was {rng.choice(AGES)} I {rng.choice(EVENTS)} and I felt {rng.choice(FEELINGS)}.",
         f"{rng.choice(PEOPLE).capitalize()} drove me to {rng.choice(PLACES)} and we talked for hours.",
         f"I still remember how {rng.choice(FEELINGS)} I was, and honestly I think about it every week.",
         f"Later {rng.choice(PEOPLE)} told me that I had changed, and I think they were right.",
         f"Last year I {rng.choice(EVENTS)}, which I never expected.\nIt made me feel {rng.choice(FEELINGS)}."]
    rng.shuffle(s)
    return " ".join(s[: rng.randint(3, 5)])


def spam(rng: random.Random) -> str:
    code = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(6))
    url = f"https://{rng.choice(DOMAINS)}/{code}"
    return rng.choice([
        f"BUY NOW!!! {rng.choice(PRODUCTS)} {rng.randint(20, 90)}% OFF limited offer, click the link {url} "
        f"use promo code {code.upper()} free shipping",
        f"We are hiring: {rng.choice(ROLES)} at {rng.choice(COMPANIES)}. Apply today at {url} "
        f"salary ${rng.randint(30, 90)}k, benefits, #jobs #hiring #career",
        f"Win a FREE {rng.choice(PRODUCTS)}!!! Subscribe and share, visit {url} to claim your prize "
        f"before midnight. Special deal, order now",
        f"{rng.choice(COMPANIES)} official store: {rng.choice(PRODUCTS)} on sale {url} {url} discount "
        f"ends soon, get it now",
    ])


def fixture(n_per_label: int = 150, seed: int = 7, platforms: tuple[str, ...] = ("reddit",)) -> pa.Table:
    rng = random.Random(seed)
    rows = [(life_story(rng), "high") for _ in range(n_per_label)] + [(spam(rng), "low") for _ in range(n_per_label)]
    rng.shuffle(rows)
    return pa.table({"text": [t for t, _ in rows], LABEL: [lab for _, lab in rows],
                     "platform": [platforms[i % len(platforms)] for i in range(len(rows))]})


HELD_STORY = ("When I was twelve my grandmother taught me to bake bread in her tiny kitchen, and I felt "
              "so proud when my dad asked for a second slice. I still think about it every winter.")
HELD_AD = "LIMITED OFFER!!! wireless earbuds 70% off, click the link https://bit.ly/zz9 and order now, promo code ZZ9"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("quality")
    path = str(d / "quality-shared.bin")
    report = train_quality(fixture(), path, QualityTrainConfig(**SMALL))
    return path, report


def test_fasttext_line():
    line = fasttext_line("Hello\tWorld.\nSecond  line\r\n__label__high  end", 2000)
    assert "\n" not in line and "\t" not in line and "__label__" not in line
    assert line.startswith("hello world . second line")
    assert fasttext_line("ABCDEFGHIJ", 5) == "abcde"
    assert fasttext_line("", 10) == ""


def test_report_and_model(trained):
    path, report = trained
    assert report["labels"] == ["high", "low"]
    assert report["n_train"] + report["n_test"] == 300 and report["n_test"] == 60
    assert report["per_label"]["high"]["n"] == report["per_label"]["low"]["n"] == 30  # stratified
    for m in (*report["per_label"].values(), report["micro"]):
        assert m["precision"] > 0.9 and m["recall"] > 0.9
    assert os.path.isfile(path) and os.path.getsize(path) == report["model_bytes"]
    assert report["model_bytes"] < 3_000_000  # (words + 20000 buckets) x 16 floats
    assert not report["quantized"] and report["train_seconds"] >= 0


def test_score_ranks_story_above_ad(trained):
    path, _ = trained
    s = score(pa.array([HELD_STORY, HELD_AD, None, "   "]), path, ("high", "medium")).to_pylist()
    assert s[0] > 0.5 > s[1]
    assert s[2] == 0.0 and s[3] == 0.0
    assert load_model(path) is load_model(path)  # one load per process
    with pytest.raises(ValueError, match="positive labels"):
        score(pa.array([HELD_STORY]), path, ("good",))


def test_quantized_is_smaller_and_scores(trained, tmp_path):
    path, plain = trained
    qpath = str(tmp_path / "q.bin")
    report = train_quality(fixture(), qpath, QualityTrainConfig(**SMALL, quantize=True, cutoff=1000))
    assert report["quantized"] and report["model_bytes"] < plain["model_bytes"] / 4
    assert report["micro"]["precision"] > 0.9
    s = score(pa.chunked_array([[HELD_STORY], [HELD_AD]]), qpath, ("high",)).to_pylist()
    assert s[0] > s[1]


def test_score_events_thresholds_and_fallback(trained):
    path, _ = trained
    table = pa.table({
        "platform": ["reddit", "reddit", "twitter", "twitter", "blogger", "blogger"],
        "title": ["My grandmother", None, None, None, None, None],
        "text": [HELD_STORY, HELD_AD, HELD_STORY, HELD_AD, HELD_STORY, HELD_AD],
    })
    # Only reddit has a model: other platforms get null scores and are kept.
    q, keep = score_events(table, QualityConfig(models={"reddit": path}, thresholds={"reddit": 0.5}))
    assert q.type == pa.float32() and keep.type == pa.bool_()
    assert q.null_count == 4 and q[0].as_py() > 0.5 > q[1].as_py()
    assert keep.to_pylist() == [True, False, True, True, True, True]
    # The default model serves every platform; twitter's own threshold (0) wins over the default one.
    q, keep = score_events(table, QualityConfig(models={"default": path},
                                                thresholds={"twitter": 0.0, "default": 0.5}))
    assert q.null_count == 0
    assert keep.to_pylist() == [True, False, True, True, True, False]
    # No threshold: scored but everything kept.
    q, keep = score_events(table, QualityConfig(models={"default": path}))
    assert q.null_count == 0 and all(keep.to_pylist())
    q, keep = score_events(table.slice(0, 0), QualityConfig(models={"default": path}))
    assert len(q) == 0 and len(keep) == 0


def test_training_is_deterministic(trained, tmp_path):
    """Same rows and seed: same report and identical model bytes, even after a quantization in this
    process (whose freed memory once leaked into the next model's uninitialised matrix as NaN)."""
    path, first = trained
    train_quality(fixture(), str(tmp_path / "q.bin"), QualityTrainConfig(**SMALL, quantize=True, cutoff=500))
    again = train_quality(fixture(), str(tmp_path / "again.bin"), QualityTrainConfig(**SMALL))
    strip = lambda r: {k: v for k, v in r.items() if k not in ("train_seconds", "model")}  # noqa: E731
    assert strip(again) == strip(first)
    with open(path, "rb") as a, open(tmp_path / "again.bin", "rb") as b:
        assert a.read() == b.read()


def test_cli_and_per_platform(tmp_path):
    from ray_jobs import train_quality as job

    data = tmp_path / "labels"
    data.mkdir()
    table = fixture(platforms=("reddit", "twitter"))
    pq.write_table(table.slice(0, 150), data / "part-0.parquet")
    pq.write_table(table.slice(150), data / "part-1.parquet")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("train_quality:\n" + "".join(f"  {k}: {v}\n" for k, v in SMALL.items())
                        + f"  data: {data}\n  output_dir: {tmp_path / 'out'}\n")
    assert job.main(["--config", str(cfg_file)]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(report["models"]) == ["shared"] and (tmp_path / "out" / "quality-shared.bin").is_file()
    assert report["curate_quality_models"] == {"default": str(tmp_path / "out" / "quality-shared.bin")}

    cfg = PipelineConfig(train_quality=QualityTrainConfig(**SMALL, data=str(data), per_platform=True,
                                                          output_dir=str(tmp_path / "pp")))
    report = train_from_config(cfg)
    assert sorted(report["models"]) == ["reddit", "twitter"]
    assert sorted(os.listdir(tmp_path / "pp")) == ["quality-reddit.bin", "quality-twitter.bin", "report.json"]
    assert all(r["n_train"] + r["n_test"] == 150 for r in report["models"].values())


def test_train_from_config_errors(tmp_path):
    def run(table: pa.Table, name: str, **kw):
        f = tmp_path / name
        pq.write_table(table, f)
        tq = QualityTrainConfig(**SMALL, data=str(f), output_dir=str(tmp_path / "o"), **kw)
        cfg = PipelineConfig(train_quality=tq)
        with pytest.raises(QualityDataError) as exc:
            train_from_config(cfg)
        assert str(f) in str(exc.value)
        return str(exc.value)

    good = fixture(n_per_label=20)
    assert "label" in run(good.drop_columns([LABEL]), "nolabel.parquet")
    assert "2 distinct labels" in run(good.filter(pa.compute.equal(good[LABEL], "high")), "onelabel.parquet")
    one_low = pa.concat_tables([good.filter(pa.compute.equal(good[LABEL], "high")), good.slice(0, 0)])
    one_low = pa.concat_tables([one_low, pa.table({"text": ["buy now"], LABEL: ["low"], "platform": ["reddit"]})])
    assert "at least 2" in run(one_low, "fewrows.parquet")
    assert "platform" in run(good.drop_columns(["platform"]), "noplatform.parquet", per_platform=True)


def test_curate_scores_and_filters_with_a_trained_model(tmp_path):
    """The quality step inside curate: every kept event scored, low scorers rejected with low_quality."""
    import json

    from core import schema as S
    from core.storage import RunRoot
    from processing.curate_stage import run as run_curate
    from processing.settings import QualityTrainConfig
    from ray_jobs.config import parse_config

    model = str(tmp_path / "q.bin")
    train_quality(fixture(), model, QualityTrainConfig(**SMALL))
    rng = random.Random(5)
    texts = [life_story(rng) for _ in range(6)] + [spam(rng) for _ in range(3)]
    with open(tmp_path / "r.jsonl", "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"user_id": f"u{i}", "parent_asin": f"i{i}", "rating": 4.0, "text": t,
                                "timestamp": 1_600_000_000_000 + i}) + "\n")
    cfg = parse_config({
        "run_root": str(tmp_path / "run"), "salt": "t",
        "curate": {"inputs": [{"path": str(tmp_path / "r.jsonl"), "format": "amazon_2023"}],
                   "language": {"enabled": False}, "cleaning": {"max_removed_fraction": 1.0},
                   "amazon": {"require_item_title": False, "top_item_fraction": 1.0, "user_k": 1, "item_k": 1,
                              "min_history": 1},
                   "quality": {"models": {"default": model}, "thresholds": {"amazon": 0.5}}}})
    stats = run_curate(cfg, use_ray=False)
    events = RunRoot(cfg.run_root).read_parquet("events", schema=S.EVENT_SCHEMA)
    assert stats["platforms"]["amazon"]["rejected"]["quality"] == {"low_quality": 3}
    assert events.num_rows == 6 and min(events[S.QUALITY].to_pylist()) > 0.5
