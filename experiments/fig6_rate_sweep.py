"""Figure 6: P95 TTFT and output throughput against request rate (trace time scales) per policy."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.plots import RateSweepPoint, plot_rate_sweep  # noqa: E402
from experiments.replay.figures import register_schemas, run_policies  # noqa: E402
from experiments.workload import load_workload_trace, mean_request_rate  # noqa: E402

register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    points = []
    for scale in cfg.time_scales:
        cfg.trace.shaping.time_scale = scale
        rate = mean_request_rate(load_workload_trace(cfg.trace))
        results = run_policies(cfg)
        points += [RateSweepPoint(p, rate, r.row["p95_ttft_ms"], r.row["output_throughput"]) for p, r in results.items()]
    files = plot_rate_sweep(points, Path(cfg.figure_dir), title=cfg.model.name)
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
