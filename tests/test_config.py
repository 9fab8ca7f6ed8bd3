"""Typed configs: shipped configs validate; bad keys and values fail naming the key and what is allowed."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError
from ray_jobs.config import load_config, parse_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    # a pipeline config names its raw inputs; a training-only config (train_*.yaml) its base model
    assert cfg.curate.inputs if not path.name.startswith("train_") else cfg.train.model.startswith("Qwen/")


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as exc:
        parse_config({"curate": {"reddit": {"min_chars_submision": 10}}}, "my.yaml")
    msg = str(exc.value)
    assert "my.yaml: unknown key `curate.reddit.min_chars_submision`" in msg
    assert "min_chars_submission" in msg and "bot_authors" in msg  # the allowed keys are listed


def test_bad_value_names_allowed_values():
    with pytest.raises(ConfigError) as exc:
        parse_config({"curate": {"inputs": [{"path": "x", "format": "reddit_json"}]}})
    msg = str(exc.value)
    assert "`curate.inputs.0.format`" in msg and "'reddit_pushshift'" in msg and "'reddit_json'" in msg


def test_range_checked():
    with pytest.raises(ConfigError, match="curate.cleaning.max_removed_fraction"):
        parse_config({"curate": {"cleaning": {"max_removed_fraction": 2}}})


def test_overrides_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("run_root: /tmp/x\n")
    assert load_config(p, {"curate.num_user_buckets": 3}).curate.num_user_buckets == 3
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_salt_from_environment(monkeypatch):
    cfg = parse_config({"salt": None})
    monkeypatch.delenv("HUMANLLM_SALT", raising=False)
    with pytest.raises(ConfigError, match="HUMANLLM_SALT"):
        cfg.user_salt()
    monkeypatch.setenv("HUMANLLM_SALT", "s3cret")
    assert cfg.user_salt() == "s3cret"
