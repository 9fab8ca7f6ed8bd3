"""A node-local copy of a model folder on S3: fetched once per node, refetched when its objects change.

The copy lives under `<cache>/<uri id>/<content id>/`, where the content id hashes every object's key
and ETag: a rewritten model gets a new folder, an unchanged one is reused. Processes on one node that
want the same model wait on one file lock while the first downloads; the folder appears under its
final name only when complete (download to a temporary name, then rename), so a killed download is
never mistaken for a model. Older copies of the same URI are removed after a new one lands.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time

from core.config import StorageConfig
from llm.ids import stable_id

log = logging.getLogger(__name__)

CACHE_ENV = "HUMANLLM_MODEL_CACHE"


def cache_root() -> str:
    """The node-local cache folder (HUMANLLM_MODEL_CACHE, else ~/.cache/humanllm/remote-models)."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "humanllm", "remote-models")


def _client(storage: StorageConfig):
    import boto3

    return boto3.client("s3", endpoint_url=storage.endpoint_url, region_name=storage.region)


def list_objects(uri: str, storage: StorageConfig) -> list[tuple[str, str, int]]:
    """(key relative to the folder, ETag, size) of every object under an s3:// folder, sorted."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/"
    out = []
    for page in _client(storage).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out.append((obj["Key"][len(prefix):], obj["ETag"].strip('"'), int(obj["Size"])))
    return sorted(out)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def local_copy(uri: str, storage: StorageConfig | None = None, weights: bool = True) -> str:
    """This node's copy of the model folder at `uri` (s3://bucket/prefix), downloaded when missing or
    changed; `weights=False` fetches everything but the weights (config, tokenizer, chat template)."""
    storage = storage or StorageConfig()
    objects = list_objects(uri, storage)
    if not objects:
        raise FileNotFoundError(f"{uri}: no objects under this folder (a model folder holds config.json and "
                                f"the weights); check the URI and storage.endpoint_url")
    if not weights:
        objects = [o for o in objects if not o[0].endswith(WEIGHT_SUFFIXES)]
    home = os.path.join(cache_root(), stable_id(uri, "weights" if weights else "no-weights"))
    dest = os.path.join(home, stable_id(*(f"{k}:{etag}" for k, etag, _ in objects)))
    if os.path.isdir(dest):
        return dest
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent readers on this node wait for one download
        if os.path.isdir(dest):
            return dest
        _download(uri, objects, storage, dest)
        for old in os.listdir(home):
            if old not in (os.path.basename(dest), ".lock"):
                shutil.rmtree(os.path.join(home, old), ignore_errors=True)
    return dest


def _download(uri: str, objects: list[tuple[str, str, int]], storage: StorageConfig, dest: str) -> None:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/"
    tmp = f"{dest}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    client, t0 = _client(storage), time.perf_counter()
    for key, _, _ in objects:
        target = os.path.join(tmp, key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        client.download_file(bucket, prefix + key, target)
    os.replace(tmp, dest)
    log.info("fetched %s (%d files, %.1f MB) into %s in %.1f s", uri, len(objects),
             sum(size for _, _, size in objects) / 1e6, dest, time.perf_counter() - t0)
