"""Table 1: perplexity vs number of INT4 layers per swap order: ``python experiments/table1.py [overrides]``.

Needs the LIS order (``python experiments/profile_layers.py`` first) unless ``orders`` leaves out lis.
Writes table1.csv, table1.json, table1.md and table1.png into the Hydra run folder (results/table1/...).
"""
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.eval.config import Table1Config, register_schemas
from experiments.eval.order_table import markdown_table, plot_table1, table1_rows
from experiments.eval.session import EvalSession
from experiments.metrics.report import write_report

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
