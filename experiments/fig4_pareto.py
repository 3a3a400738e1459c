"""Figure 4: P95 TTFT against output quality (Rouge-L) per policy; needs an eval set (e.g. dataset=qmsum_goldspan)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.plots import ParetoPoint, plot_pareto  # noqa: E402
from experiments.replay.figures import register_schemas, run_policies  # noqa: E402

register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    if cfg.dataset.name is None:
        raise SystemExit("Figure 4 scores output quality: choose an eval set, e.g. dataset=qmsum_goldspan")
    results = run_policies(cfg)
    points = [ParetoPoint(p, r.row["p95_ttft_ms"], r.row["rouge_l"]) for p, r in results.items()]
    files = plot_pareto(points, Path(cfg.figure_dir), title=f"{cfg.model.name}, {cfg.dataset.name}")
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
