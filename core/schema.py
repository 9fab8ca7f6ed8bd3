"""Every column name and record schema of the project, defined once.

Records (see DESIGN.md): an *event* is one kept post/comment/tweet/review; a *reject* is one dropped
input row with the stage and reason; a *user* is one kept person with counts and metadata.
"""
from __future__ import annotations

import pyarrow as pa

# Platforms and event kinds.
REDDIT, TWITTER, BLOGGER, AMAZON = "reddit", "twitter", "blogger", "amazon"
PLATFORMS = (REDDIT, TWITTER, BLOGGER, AMAZON)
SUBMISSION, COMMENT, TWEET, BLOG_POST, REVIEW = "submission", "comment", "tweet", "blog_post", "review"
KINDS = (SUBMISSION, COMMENT, TWEET, BLOG_POST, REVIEW)

# Event columns.
EVENT_ID = "event_id"
PLATFORM = "platform"
USER_ID = "user_id"
TS = "ts"
KIND = "kind"
TEXT = "text"
TITLE = "title"
CONTEXT = "context"
META = "meta"
SOURCE_URI = "source_uri"
SOURCE_ROW = "source_row"
NATIVE_ID = "native_id"
PARENT_ID = "parent_id"  # native id of the thread root (Reddit link_id) or the reviewed item
LANG = "lang"
LANG_SCORE = "lang_score"
QUALITY = "quality"
DUP_CLUSTER = "dup_cluster"
DUP_CLUSTER_SIZE = "dup_cluster_size"
USER_BUCKET = "user_bucket"
PII_COUNT = "pii_count"
REMOVED_FRACTION = "removed_fraction"

TS_TYPE = pa.timestamp("us", tz="UTC")

# Columns every reader produces (before cleaning and scores).
RAW_EVENT_SCHEMA = pa.schema(
    [
        pa.field(EVENT_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(TS, TS_TYPE),
        pa.field(KIND, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(TITLE, pa.string()),
        pa.field(CONTEXT, pa.string()),
        pa.field(META, pa.string()),  # JSON object
        pa.field(NATIVE_ID, pa.string()),
        pa.field(PARENT_ID, pa.string()),
        pa.field(SOURCE_URI, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
    ]
)

# Transient rule inputs that readers add beside the raw columns; dropped before anything is written.
AUTHOR = "author"  # the raw author name, lower-cased: only for bot/deleted checks, never written
SCORE = "score"
NUM_COMMENTS = "num_comments"
IS_SELF = "is_self"
DISTINGUISHED = "distinguished"
REMOVED = "removed"  # the body was "[removed]"/"[deleted]"
IS_TOP_LEVEL = "is_top_level"
IS_RETWEET = "is_retweet"
RULE_SCHEMA = pa.schema(
    [
        pa.field(AUTHOR, pa.string()),
        pa.field(SCORE, pa.int64()),
        pa.field(NUM_COMMENTS, pa.int64()),
        pa.field(IS_SELF, pa.bool_()),
        pa.field(DISTINGUISHED, pa.string()),
        pa.field(REMOVED, pa.bool_()),
        pa.field(IS_TOP_LEVEL, pa.bool_()),
        pa.field(IS_RETWEET, pa.bool_()),
    ]
)
READ_BATCH_SCHEMA = pa.schema(list(RAW_EVENT_SCHEMA) + list(RULE_SCHEMA))

# Columns of a kept event in events/ (raw columns plus what curation adds).
EVENT_SCHEMA = pa.schema(
    list(RAW_EVENT_SCHEMA)
    + [
        pa.field(REMOVED_FRACTION, pa.float32()),
        pa.field(PII_COUNT, pa.int32()),
        pa.field(LANG, pa.string()),
        pa.field(LANG_SCORE, pa.float32()),
        pa.field(QUALITY, pa.float32()),  # fastText quality score; null when no model is configured
        pa.field(DUP_CLUSTER, pa.string()),  # event id of the kept copy of this event's duplicate cluster
        pa.field(DUP_CLUSTER_SIZE, pa.int32()),  # events in that cluster (1: no duplicate)
        pa.field(USER_BUCKET, pa.int32()),
    ]
)

# Dedup rows (the signatures index of a run): band -1 holds the exact key, bands 0.. the LSH keys.
BAND = "band"
KEY = "key"
DEDUP_ROW_SCHEMA = pa.schema([pa.field(BAND, pa.int16()), pa.field(KEY, pa.uint64()), pa.field(EVENT_ID, pa.string())])

# Reject columns.
STAGE = "stage"
REASON = "reason"
DETAIL = "detail"
EXCERPT = "excerpt"
EXCERPT_CHARS = 200

REJECT_SCHEMA = pa.schema(
    [
        pa.field(EVENT_ID, pa.string()),  # null when the row never became an event (unparseable)
        pa.field(PLATFORM, pa.string()),
        pa.field(USER_ID, pa.string()),
        pa.field(SOURCE_URI, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),  # -1: the whole file
        pa.field(STAGE, pa.string(), nullable=False),
        pa.field(REASON, pa.string(), nullable=False),
        pa.field(DETAIL, pa.string()),
        pa.field(EXCERPT, pa.string()),
    ]
)

# User columns.
N_EVENTS = "n_events"
N_BY_KIND = "n_by_kind"  # JSON object kind -> count
FIRST_TS = "first_ts"
LAST_TS = "last_ts"
SPAN_DAYS = "span_days"

USER_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(N_EVENTS, pa.int64(), nullable=False),
        pa.field(N_BY_KIND, pa.string()),
        pa.field(FIRST_TS, TS_TYPE),
        pa.field(LAST_TS, TS_TYPE),
        pa.field(SPAN_DAYS, pa.float64()),
        pa.field(META, pa.string()),  # JSON: blogger gender/age/industry/sign, twitter bio (scrubbed), ...
    ]
)

# Side tables that readers emit next to events: user profiles and item metadata.
PROFILE_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(META, pa.string()),  # JSON object (bio, followers, location, ...)
        pa.field(SOURCE_URI, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
    ]
)
ITEM_ID = "item_id"
ITEM_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(TITLE, pa.string()),
        pa.field(META, pa.string()),  # JSON object (categories, features, description, details)
        pa.field(SOURCE_URI, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
    ]
)


CLUSTER_SCHEMA = pa.schema([
    pa.field(EVENT_ID, pa.string()), pa.field(DUP_CLUSTER, pa.string()), pa.field(DUP_CLUSTER_SIZE, pa.int32()),
    pa.field(REASON, pa.string()),  # exact_duplicate / near_duplicate for removed events, null for the kept copy
])


# Synthesis (LLM) records. A *request* is one prompt to an engine; an *annotation* is its parsed
# answer (one per request that parsed, or NULL); a *judgement* scores one annotation; a *failure* is a
# request that never gave a valid answer within the attempts allowed.
REQUEST_ID = "request_id"
ANNOTATION_ID = "annotation_id"
ANNOTATION_KIND = "annotation_kind"  # a generation kind of synthesis/prompts (tag_v1, persona, sqa_general, ...)
SUBJECT_ID = "subject_id"  # the event or user the request is about
SHARD = "shard"  # the events/ part the subject came from (platform/part-NNNN)
ATTEMPT = "attempt"
SEED = "seed"
PROMPT = "prompt"  # the prompt rendered with the model's chat template
MESSAGES = "messages"  # JSON [{role, content}]
PROMPT_HASH = "prompt_hash"
SAMPLING = "sampling"  # JSON sampling parameters (max_tokens, temperature, structured_outputs, ...)
PRIORITY = "priority"  # order of requests inside a user's group (high-quality posts first)
GENERATED_TEXT = "generated_text"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"
ENGINE_ERROR = "engine_error"
ENGINE = "engine"
MODEL = "model"
OK = "ok"
IS_NULL = "is_null"
FIELDS = "fields"  # JSON object of the parsed, typed fields
ERROR = "error"
PII_FOUND = "pii_found"  # JSON {kind: count} of identifiers scrubbed from a generated text (null: none)
SCORES = "scores"  # JSON {dimension: 1..10}
EXPLANATION = "explanation"
OVERALL = "overall"
ACCEPTED = "accepted"
JUDGE_KIND = "judge_kind"

REQUEST_SCHEMA = pa.schema(
    [
        pa.field(REQUEST_ID, pa.string(), nullable=False),
        pa.field(ANNOTATION_KIND, pa.string(), nullable=False),
        pa.field(SUBJECT_ID, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(SHARD, pa.string(), nullable=False),
        pa.field(PRIORITY, pa.int32()),
        pa.field(ATTEMPT, pa.int32()),
        pa.field(SEED, pa.int64()),
        pa.field(MESSAGES, pa.string()),
        pa.field(PROMPT, pa.string()),
        pa.field(PROMPT_HASH, pa.string()),
        pa.field(SAMPLING, pa.string()),
    ]
)

# One row per engine answer (every attempt), written as the engine streams them back.
OUTPUT_SCHEMA = pa.schema(
    [
        pa.field(REQUEST_ID, pa.string(), nullable=False),
        pa.field(ANNOTATION_KIND, pa.string(), nullable=False),
        pa.field(SUBJECT_ID, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(SHARD, pa.string(), nullable=False),
        pa.field(ATTEMPT, pa.int32()),
        pa.field(SEED, pa.int64()),
        pa.field(PROMPT_HASH, pa.string()),
        pa.field(GENERATED_TEXT, pa.string()),
        pa.field(PROMPT_TOKENS, pa.int64()),
        pa.field(COMPLETION_TOKENS, pa.int64()),
        pa.field(ENGINE_ERROR, pa.string()),
        pa.field(OK, pa.bool_()),
        pa.field(IS_NULL, pa.bool_()),
        pa.field(FIELDS, pa.string()),
        pa.field(ERROR, pa.string()),
        pa.field(ENGINE, pa.string()),
        pa.field(MODEL, pa.string()),
        pa.field(PII_FOUND, pa.string()),
    ]
)

# The accepted-by-parser answer of each request (annotations/), or its last failure (failures/).
ANNOTATION_SCHEMA = pa.schema(
    [
        pa.field(ANNOTATION_ID, pa.string(), nullable=False),
        pa.field(ANNOTATION_KIND, pa.string(), nullable=False),
        pa.field(SUBJECT_ID, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(IS_NULL, pa.bool_()),
        pa.field(FIELDS, pa.string()),
        pa.field(GENERATED_TEXT, pa.string()),
        pa.field(PROMPT_HASH, pa.string()),
        pa.field(ENGINE, pa.string()),
        pa.field(MODEL, pa.string()),
        pa.field(PROMPT_TOKENS, pa.int64()),  # summed over every attempt
        pa.field(COMPLETION_TOKENS, pa.int64()),
        pa.field(ATTEMPT, pa.int32()),  # attempts used (1 = first answer was valid)
    ]
)

FAILURE_SCHEMA = pa.schema(
    [
        pa.field(REQUEST_ID, pa.string(), nullable=False),
        pa.field(ANNOTATION_KIND, pa.string(), nullable=False),
        pa.field(SUBJECT_ID, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(ATTEMPT, pa.int32()),
        pa.field(REASON, pa.string()),
        pa.field(GENERATED_TEXT, pa.string()),  # the last answer, for inspection
        pa.field(PROMPT_TOKENS, pa.int64()),
        pa.field(COMPLETION_TOKENS, pa.int64()),
    ]
)

JUDGEMENT_SCHEMA = pa.schema(
    [
        pa.field(ANNOTATION_ID, pa.string(), nullable=False),
        pa.field(ANNOTATION_KIND, pa.string(), nullable=False),
        pa.field(JUDGE_KIND, pa.string()),
        pa.field(SUBJECT_ID, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(SCORES, pa.string()),
        pa.field(OVERALL, pa.int32()),
        pa.field(EXPLANATION, pa.string()),
        pa.field(ACCEPTED, pa.bool_()),
        pa.field(REASON, pa.string()),  # why rejected (which dimension under which threshold), or exempt
        pa.field(ENGINE, pa.string()),
        pa.field(MODEL, pa.string()),
        pa.field(PROMPT_TOKENS, pa.int64()),
        pa.field(COMPLETION_TOKENS, pa.int64()),
    ]
)


# SFT examples (sft/train, sft/test). `messages` is the chat [{role, content}] a trainer reads;
# `subject_id` / `subject_ts` name the post (or user) the example is about (time splits, audits).
EXAMPLE_ID = "example_id"
TASK = "task"
N_TOKENS = "n_tokens"  # the whole example with the base model's chat template
TARGET_TOKENS = "target_tokens"  # the assistant turn alone
SPLIT = "split"
SUBJECT_TS = "subject_ts"
RANK = "rank"  # the example's deterministic draw (caps keep the lowest ranks)
HELD_OUT_LATE = "held_out_late"  # about one of the user's latest posts (the time split's test side)
TRAIN, TEST = "train", "test"
MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

SFT_SCHEMA = pa.schema(
    [
        pa.field(EXAMPLE_ID, pa.string(), nullable=False),
        pa.field(TASK, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(SUBJECT_ID, pa.string()),
        pa.field(SUBJECT_TS, TS_TYPE),
        pa.field(MESSAGES, pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field(N_TOKENS, pa.int32()),
        pa.field(TARGET_TOKENS, pa.int32()),
        pa.field(RANK, pa.uint64()),
        pa.field(HELD_OUT_LATE, pa.bool_()),
        pa.field(SPLIT, pa.string()),
    ]
)

# Examples the builder dropped, with the reason (target bounds, token limit, benchmark overlap, caps).
SFT_REJECT_SCHEMA = pa.schema(
    [
        pa.field(EXAMPLE_ID, pa.string(), nullable=False),
        pa.field(TASK, pa.string(), nullable=False),
        pa.field(PLATFORM, pa.string(), nullable=False),
        pa.field(USER_ID, pa.string(), nullable=False),
        pa.field(REASON, pa.string(), nullable=False),
        pa.field(DETAIL, pa.string()),
    ]
)


# Evaluation (eval/). A benchmark item is one multiple-choice question; `answer` is the index of
# the correct choice. One result row per (model, item, scoring method).
ITEM_ID = "item_id"
BENCHMARK = "benchmark"
SUBSET = "subset"
QUESTION = "question"
CHOICES = "choices"
ANSWER = "answer"
MCQ_ITEM_SCHEMA = pa.schema(
    [
        pa.field(ITEM_ID, pa.string(), nullable=False),
        pa.field(BENCHMARK, pa.string(), nullable=False),
        pa.field(SUBSET, pa.string(), nullable=False),
        pa.field(LANG, pa.string(), nullable=False),
        pa.field(CONTEXT, pa.string(), nullable=False),
        pa.field(QUESTION, pa.string(), nullable=False),
        pa.field(CHOICES, pa.list_(pa.string()), nullable=False),
        pa.field(ANSWER, pa.int32(), nullable=False),
    ]
)
