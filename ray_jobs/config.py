"""The pipeline configuration: one YAML composed of every stage's own section (each defined beside
its stage), plus the run root, storage, Ray and the user-id salt."""
from __future__ import annotations

import os
from typing import Any

from core.config import ConfigError, Model, RayConfig, read_yaml, StorageConfig, validate
from core.layout import RunLayout
from evaluation.settings import AblationConfig, EvalConfig
from processing.settings import CurateConfig, QualityTrainConfig
from sft.settings import SFTConfig
from simulate.settings import ServeConfig
from synthesis.settings import SynthesisConfig
from train.settings import TrainConfig


class PipelineConfig(Model):
    run_root: str = "runs/local"
    salt: str | None = None  # user-id salt; the environment variable salt_env wins when set
    salt_env: str = "HUMANLLM_SALT"
    storage: StorageConfig = StorageConfig()
    # The bench_<name> folders (local or s3://), read by the SFT leakage check and by evaluation.
    benchmark_data: str = "../shared/data"
    ray: RayConfig = RayConfig()
    curate: CurateConfig = CurateConfig()
    train_quality: QualityTrainConfig = QualityTrainConfig()
    synthesis: SynthesisConfig = SynthesisConfig()
    sft: SFTConfig = SFTConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvalConfig = EvalConfig()
    ablation: AblationConfig = AblationConfig()
    serve: ServeConfig = ServeConfig()

    def user_salt(self) -> str:
        """The secret salt of user ids: from the environment, else the config; an error if neither."""
        salt = os.environ.get(self.salt_env) or self.salt
        if not salt:
            raise ConfigError(f"no user-id salt: set the environment variable {self.salt_env} or `salt:` in the config")
        return salt

    def benchmark_dir(self, uri: str | None = None) -> str:
        """A local folder of benchmark data (`uri`, default `benchmark_data`): an s3:// folder is fetched
        once per node and refetched when it changes (llm.model_cache)."""
        uri = uri or self.benchmark_data
        if uri.startswith("s3://"):
            from llm.model_cache import local_copy

            return local_copy(uri, self.storage)
        return uri

    def layout(self) -> RunLayout:
        """The run root's layout, with the folders this config places elsewhere."""
        return RunLayout(self.run_root, self.storage, inputs_uri=self.sft.inputs, sft_export_uri=self.train.data,
                         train_storage_uri=self.train.storage_path, model_uri=self.train.output_dir,
                         eval_uri=self.evaluate.output_dir, ablation_uri=self.ablation.output_dir)


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> PipelineConfig:
    """Validate a config mapping; raise ConfigError listing every bad key."""
    return validate(PipelineConfig, data, source)


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a YAML config file, apply dotted-key overrides ({"curate.num_user_buckets": 4}), validate."""
    return parse_config(read_yaml(path, overrides), str(path))
