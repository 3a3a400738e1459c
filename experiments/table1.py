"""Table 1: perplexity vs number of INT4 layers per swap order: ``python experiments/table1.py [overrides]``.

Needs the LIS order (``python experiments/profile_layers.py`` first) unless ``orders`` leaves out lis.
Writes table1.csv, table1.json, table1.md and table1.png into the Hydra run folder (results/table1/...).
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.eval.config import Table1Config, register_schemas  # noqa: E402
from experiments.eval.order_table import markdown_table, plot_table1, table1_rows  # noqa: E402
from experiments.eval.session import EvalSession  # noqa: E402
from experiments.metrics.report import write_report  # noqa: E402

register_schemas()


@hydra.main(config_path="../configs", config_name="table1", version_base=None)
def main(raw: DictConfig) -> None:
    cfg: Table1Config = OmegaConf.to_object(raw)
    session = EvalSession(cfg.model, cfg.data, cfg.quant)
    rows = table1_rows(session, cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    files = write_report(rows, out_dir, stem="table1")
    table = markdown_table(rows, session.num_layers)
    (out_dir / "table1.md").write_text(table + "\n")
    figure = plot_table1(rows, str(out_dir), f"{cfg.model.name}, {cfg.int4_variant}")
    print(table)
    print(f"wrote {files.csv}, {files.json}, {out_dir / 'table1.md'} and {figure.png}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
