"""The layout of one run root: the only module that spells a folder or file name of a run.

A run lives under one root URI (a local path or `s3://bucket/prefix`); every stage is handed a
`RunLayout` and reads and writes through it, so a stage never spells another stage's path and a
folder is renamed here alone. Methods return paths relative to the run root (for `RunLayout.root`,
a `RunRoot`), except the few folders a config may place elsewhere (the SFT export, Ray Train
storage, the model folder, the evaluation and ablation folders), which are URIs.

    events/<platform>/<part>.parquet   users/   rejects/<step>/   dedup_index/<platform>/p=NNNN/
    stats.json   _markers/<stage>/   _work/curate/            (curate)
    synth/outputs/  synth/stats.json  annotations/<pass>/  judgements/  failures/<pass>/   (synthesize)
    sft/train/  sft/test/  sft/rejects/  sft/export/*.jsonl  sft/stats.json  sft/README.md   (build-sft)
    train/<name>/ (checkpoints)   model/tuned  model/merged  model/metrics.jsonl  model/wandb (train)
    eval/ (items, mcq/, generations/, judge, in_domain, summary.json, report.html, figures/)  (evaluate)
    ablation_person/   logs/
    simulate/<task>/ (answers.parquet, parts/, stats.json)   (simulate)
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property

from core.config import StorageConfig
from core.storage import RunRoot


def _parquet(folder: str, shard: str | None) -> str:
    return folder if shard is None else f"{folder}/{shard}.parquet"


@dataclass(frozen=True)
class RunLayout:
    """Every folder and file of one run root. Optional URIs override where a config places them."""

    run_root: str
    storage: StorageConfig = field(default_factory=StorageConfig)
    inputs_uri: str | None = None  # sft.inputs: the run root build-sft reads events and annotations from
    sft_export_uri: str | None = None  # train.data
    train_storage_uri: str | None = None  # train.storage_path
    model_uri: str | None = None  # train.output_dir
    eval_uri: str | None = None  # evaluate.output_dir
    ablation_uri: str | None = None  # ablation.output_dir

    @cached_property
    def root(self) -> RunRoot:
        """The storage handle of the run root (built once)."""
        return RunRoot(self.run_root, self.storage)

    @cached_property
    def inputs(self) -> RunRoot:
        """The run root build-sft reads curated events and synthesis outputs from (this one by default)."""
        return self.root if self.inputs_uri is None else self.at(self.inputs_uri)

    @property
    def uri(self) -> str:
        return self.root.uri_of()

    def at(self, uri: str) -> RunRoot:
        """A storage handle for a URI of this run (same storage settings)."""
        return RunRoot(uri, self.storage)

    # ---- shared -------------------------------------------------------------------------------
    MARKERS = "_markers"
    LOGS = "logs"
    DRIVER_LOG = "driver.log"  # in the logs folder: the driver's library, Ray, engine and DeepSpeed output

    @classmethod
    def markers(cls, stage: str, shard: str | None = None) -> str:
        """_markers/<stage>/ or one shard's marker (JSON) in it."""
        return f"{cls.MARKERS}/{stage}" if shard is None else f"{cls.MARKERS}/{stage}/{shard}.json"

    def local_logs_dir(self) -> str:
        """Local folder for the driver's library, Ray, engine and DeepSpeed logs: <run_root>/logs, or for
        a remote run root a fresh temporary folder holding the run's log so far (`upload_logs` puts it
        back, longer, when the command ends: a job's working directory goes away with it)."""
        return self.root.path(self.LOGS) if "://" not in self.run_root else self._remote_logs

    @cached_property
    def _remote_logs(self) -> str:
        folder = tempfile.mkdtemp(prefix="humanllm-logs-")
        rel = posixpath.join(self.LOGS, self.DRIVER_LOG)
        if self.root.exists(rel):
            with open(os.path.join(folder, self.DRIVER_LOG), "wb") as f:
                f.write(self.root.read_bytes(rel))
        return folder

    def driver_log(self) -> str:
        """Where the driver's log of this run is (a path or URI), for the console."""
        return self.root.uri_of(posixpath.join(self.LOGS, self.DRIVER_LOG))

    def upload_logs(self) -> None:
        """Put the log of a remote run root back at <run_root>/logs/ and remove the temporary copy
        (no-op for a local root)."""
        if "://" not in self.run_root or "_remote_logs" not in self.__dict__:
            return
        local = os.path.join(self._remote_logs, self.DRIVER_LOG)
        if os.path.exists(local):
            with open(local, "rb") as f:
                self.root.write_bytes(posixpath.join(self.LOGS, self.DRIVER_LOG), f.read())
        shutil.rmtree(self._remote_logs, ignore_errors=True)
        del self.__dict__["_remote_logs"]

    # ---- curate -------------------------------------------------------------------------------
    EVENTS = "events"
    USERS = "users"
    REJECTS = "rejects"
    DEDUP_INDEX = "dedup_index"
    CURATE_WORK = "_work/curate"
    STATS = "stats.json"

    @classmethod
    def events(cls, shard: str | None = None) -> str:
        """events/ or one shard (`<platform>/b=NNNN`) of it."""
        return _parquet(cls.EVENTS, shard)

    @classmethod
    def users(cls, shard: str | None = None) -> str:
        return _parquet(cls.USERS, shard)

    def event_shards(self, platforms: list[str], root: RunRoot | None = None) -> list[str]:
        """`<platform>/<part>` of every curated events/ file of the platforms asked for (in `root`, by
        default the run root)."""
        shards = []
        for platform in platforms:
            for rel in (root or self.root).list(f"{self.EVENTS}/{platform}", suffix=".parquet"):
                shards.append(f"{platform}/{rel.rsplit('/', 1)[-1][:-len('.parquet')]}")
        return sorted(shards)

    @classmethod
    def rejects(cls, step: str | None = None, shard: str | None = None) -> str:
        return cls.REJECTS if step is None else _parquet(f"{cls.REJECTS}/{step}", shard)

    @classmethod
    def dedup_index(cls, platform: str | None = None, partition: int | None = None, shard: str | None = None) -> str:
        """dedup_index/, a platform's index, one hash partition of it, or one writer's file in it."""
        if platform is None:
            return cls.DEDUP_INDEX
        folder = f"{cls.DEDUP_INDEX}/{platform}"
        if partition is None:
            return folder
        return _parquet(f"{folder}/p={partition:04d}", shard)

    @classmethod
    def dedup_params(cls) -> str:
        return f"{cls.DEDUP_INDEX}/params.json"

    @classmethod
    def curate_work(cls, *parts: str) -> str:
        """Scratch of the curate stage (read-step parts, dedup edges): `_work/curate/...`."""
        return posixpath.join(cls.CURATE_WORK, *parts)

    @classmethod
    def curate_outputs(cls) -> tuple[str, ...]:
        """What a curate restart deletes."""
        return (cls.MARKERS, cls.CURATE_WORK, cls.DEDUP_INDEX, cls.EVENTS, cls.USERS, cls.REJECTS, cls.STATS)

    # ---- synthesize ---------------------------------------------------------------------------
    SYNTH = "synth"
    ANNOTATIONS = "annotations"
    JUDGEMENTS = "judgements"
    FAILURES = "failures"

    @classmethod
    def synth_outputs(cls, pass_name: str | None = None, shard: str | None = None, part: str | None = None) -> str:
        """Raw engine answers per pass and shard (resume state of a pass)."""
        parts = [p for p in (pass_name, shard) if p is not None]
        folder = posixpath.join(cls.SYNTH, "outputs", *parts)
        return _parquet(folder, part)

    @classmethod
    def synth_stats(cls) -> str:
        return f"{cls.SYNTH}/stats.json"

    @classmethod
    def quality_labels(cls) -> str:
        """The LLM quality tags as fastText training labels (distill-quality)."""
        return f"{cls.SYNTH}/quality_labels.parquet"

    @classmethod
    def annotations(cls, pass_name: str | None = None, shard: str | None = None) -> str:
        return cls.ANNOTATIONS if pass_name is None else _parquet(f"{cls.ANNOTATIONS}/{pass_name}", shard)

    @classmethod
    def judgements(cls, shard: str | None = None) -> str:
        return _parquet(cls.JUDGEMENTS, shard)

    @classmethod
    def failures(cls, pass_name: str | None = None, shard: str | None = None) -> str:
        return cls.FAILURES if pass_name is None else _parquet(f"{cls.FAILURES}/{pass_name}", shard)

    @classmethod
    def synthesis_outputs(cls) -> tuple[str, ...]:
        """What a synthesize restart deletes."""
        return (cls.SYNTH, cls.ANNOTATIONS, cls.JUDGEMENTS, cls.FAILURES)

    # ---- build-sft ----------------------------------------------------------------------------
    SFT = "sft"

    @classmethod
    def sft_split(cls, split: str, shard: str | None = None) -> str:
        """sft/train or sft/test (Parquet shards)."""
        return _parquet(f"{cls.SFT}/{split}", shard)

    @classmethod
    def sft_rejects(cls, shard: str | None = None) -> str:
        return _parquet(f"{cls.SFT}/rejects", shard)

    @classmethod
    def sft_work(cls, *parts: str) -> str:
        return posixpath.join(cls.SFT, "_work", *parts)

    @classmethod
    def sft_stats(cls) -> str:
        return f"{cls.SFT}/stats.json"

    @classmethod
    def sft_card(cls) -> str:
        return f"{cls.SFT}/README.md"

    @classmethod
    def sft_export(cls, name: str | None = None) -> str:
        """sft/export/ (messages JSONL per split, dataset_info.json) or one file in it."""
        folder = f"{cls.SFT}/export"
        return folder if name is None else f"{folder}/{name}"

    @staticmethod
    def export_file(split: str) -> str:
        return f"{split}.jsonl"

    def train_data(self) -> str:
        """URI of the folder training reads (train.jsonl, test.jsonl): the export unless a config names another."""
        return self.sft_export_uri or self.root.uri_of(self.sft_export())

    # ---- train --------------------------------------------------------------------------------
    def train_storage(self) -> str:
        """URI of Ray Train's storage (checkpoints of every run name)."""
        return self.train_storage_uri or self.root.uri_of("train")

    def model_dir(self) -> str:
        """URI of the exported models and training metrics."""
        return self.model_uri or self.root.uri_of("model")

    TUNED = "tuned"
    MERGED = "merged"
    TRAIN_METRICS = "metrics.jsonl"
    TRAIN_WANDB = "wandb"  # W&B's own folder name for its run files (wandb.init(dir=<model folder>))

    def tuned_model(self) -> str:
        return posixpath.join(self.model_dir(), self.TUNED)

    def merged_model(self) -> str:
        return posixpath.join(self.model_dir(), self.MERGED)

    def train_metrics(self) -> str:
        return posixpath.join(self.model_dir(), self.TRAIN_METRICS)

    # ---- evaluate (paths relative to `eval_root`) -----------------------------------------------
    EVAL_CONFIG = "_config.json"
    EVAL_ITEMS = "items.parquet"
    EVAL_JUDGE = "judge.parquet"
    EVAL_IN_DOMAIN = "in_domain.parquet"
    EVAL_SUMMARY = "summary.json"
    EVAL_REPORT = "report.html"

    @property
    def eval_root(self) -> RunRoot:
        return RunRoot(self.eval_uri or self.root.uri_of("eval"), self.storage)

    @staticmethod
    def eval_mcq(model: str, method: str) -> str:
        return f"mcq/{model}/{method}.parquet"

    @staticmethod
    def eval_generations(model: str) -> str:
        return f"generations/{model}.parquet"

    @staticmethod
    def eval_figure(name: str) -> str:
        return f"figures/{name}.png"

    # ---- person ablation ----------------------------------------------------------------------
    def ablation_dir(self) -> str:
        return self.ablation_uri or self.root.uri_of("ablation_person")

    def ablation_arm(self, arm: str) -> str:
        return posixpath.join(self.ablation_dir(), arm)

    ABLATION_RESULTS = "results.json"  # in the ablation folder
    ABLATION_CARD = "README.md"

    def ablation_root(self) -> RunRoot:
        """The storage handle of the ablation folder (local or s3://)."""
        return self.at(self.ablation_dir())

    # ---- simulate (batch; paths below relative to `simulate_dir`) -------------------------------
    SIMULATE = "simulate"
    SIMULATE_ANSWERS = "answers.parquet"  # one row per request, written once none is pending
    SIMULATE_PARTS = "parts"  # answers as they stream back (the resume state)
    SIMULATE_STATS = "stats.json"

    def simulate_dir(self, task: str) -> str:
        """URI of `humanllm simulate`'s default output folder for one task: <run_root>/simulate/<task>."""
        return self.root.uri_of(self.SIMULATE, task)

    @classmethod
    def simulate_part(cls, name: str | None = None) -> str:
        return _parquet(cls.SIMULATE_PARTS, name)
