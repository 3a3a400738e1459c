"""Figure 5: KV capacity over time under each policy, with the full-precision capacity as the limit line."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.plots import plot_kv_capacity  # noqa: E402
from experiments.replay.figures import register_schemas, run_policies  # noqa: E402

register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies(cfg)
    fp_blocks = next(iter(results.values())).fp_kv_blocks
    files = plot_kv_capacity({p: r.timeline for p, r in results.items()}, fp_blocks, Path(cfg.figure_dir))
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
