"""The node-local copy of an s3:// model folder (moto's S3 server on 127.0.0.1): fetched once, fetched
again when an object changes, tokenizer-only copies, and a clear error for a missing folder. The whole
pipeline on S3 (training, merge and evaluation reading models through this cache) is in test_submit.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import StorageConfig
from llm.model_cache import local_copy
from tests.conftest import upload_folder

def test_a_changed_model_is_fetched_again_and_a_missing_one_is_named(s3_endpoint, tiny_model, monkeypatch, tmp_path):
    import boto3

    monkeypatch.setenv("HUMANLLM_MODEL_CACHE", str(tmp_path / "cache"))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    upload_folder(s3, Path(tiny_model), "models", "tiny")
    where = StorageConfig(endpoint_url=s3_endpoint)
    first = local_copy("s3://models/tiny", where)
    assert sorted(p.name for p in Path(first).iterdir()) == sorted(p.name for p in Path(tiny_model).iterdir())
    no_weights = local_copy("s3://models/tiny", where, weights=False)
    assert (Path(no_weights) / "tokenizer.json").is_file() and not (Path(no_weights) / "model.safetensors").exists()
    s3.put_object(Bucket="models", Key="tiny/generation_config.json", Body=b'{"max_new_tokens": 7}')
    second = local_copy("s3://models/tiny", where)
    assert second != first and not Path(first).exists()  # the changed folder replaced the old copy
    assert json.loads((Path(second) / "generation_config.json").read_text()) == {"max_new_tokens": 7}
    with pytest.raises(FileNotFoundError, match="s3://models/absent: no objects"):
        local_copy("s3://models/absent", where)
