"""Figure 7: TPOT CDF under each policy."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.plots import plot_tpot_cdf  # noqa: E402
from experiments.replay.figures import register_schemas, run_policies  # noqa: E402
from experiments.replay.run import tpots_ms  # noqa: E402

register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies(cfg)
    files = plot_tpot_cdf({p: tpots_ms(r.records) for p, r in results.items()}, Path(cfg.figure_dir))
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
