"""Table 1: perplexity per (order, number of INT4 layers) on a tiny model, each distinct layer set evaluated
once, random averaged over seeds, the LIS order read from its JSON, and the markdown table and plot."""
import json

import pytest

from experiments.eval.config import Table1Config
from experiments.eval.order_table import markdown_table, plot_table1, swap_counts, table1_orders, table1_rows
from tests.eval_support import tiny_eval_session

NUM_LAYERS = 3


@pytest.fixture(scope="module")
def session(tiny_llama, tmp_path_factory):
    return tiny_eval_session(tiny_llama, tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def lis_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("orders") / "lis.json"
    path.write_text(json.dumps({"method": "lis", "order": [1, 0, 2]}))
    return str(path)


@pytest.fixture(scope="module")
def table(session, lis_file):
    cfg = Table1Config(int4_variant="rtn-int4-g32", counts=[1, 2], random_seeds=[0, 1, 2, 3], lis_order_file=lis_file)
    calls = []
    real = session.perplexity
    session.perplexity = lambda layers, desc: calls.append(desc) or real(layers, desc)
    rows = table1_rows(session, cfg)
    del session.perplexity
    distinct = {frozenset(order[:k]) for runs in table1_orders(cfg, NUM_LAYERS).values() for order in runs
                for k in range(NUM_LAYERS + 1)}
    return {(row["order"], row["int4_layers"]): row for row in rows}, calls, distinct


def test_every_order_starts_at_full_precision_and_ends_all_int4(session, table):
    rows, _, _ = table
    fp = session.perplexity(session.variant("fp"), "fp").ppl
    int4 = session.perplexity(session.variant("rtn-int4-g32"), "int4").ppl
    for order in ("front_to_back", "back_to_front", "random", "lis"):
        assert rows[order, 0]["ppl"] == pytest.approx(fp, rel=1e-9)
        assert rows[order, NUM_LAYERS]["ppl"] == pytest.approx(int4, rel=1e-9)
    assert int4 != pytest.approx(fp, rel=1e-4)


def test_orders_quantize_their_own_prefixes(session, table):
    rows, _, _ = table
    assert rows["front_to_back", 1]["ppl"] == pytest.approx(session.perplexity(session.mixed("rtn-int4-g32", [0]), "").ppl)
    assert rows["back_to_front", 1]["ppl"] == pytest.approx(session.perplexity(session.mixed("rtn-int4-g32", [2]), "").ppl)
    assert rows["lis", 1]["ppl"] == pytest.approx(session.perplexity(session.mixed("rtn-int4-g32", [1]), "").ppl)
    assert rows["lis", 2]["ppl"] == rows["front_to_back", 2]["ppl"]          # {1, 0} == {0, 1}


def test_random_is_the_mean_over_seeds_and_sets_are_evaluated_once(table):
    rows, calls, distinct = table
    random_row = rows["random", 1]
    assert random_row["runs"] == 4 and random_row["ppl_min"] <= random_row["ppl"] <= random_row["ppl_max"]
    assert random_row["ppl_min"] < random_row["ppl_max"]
    assert len(calls) == len(distinct)


def test_markdown_table_has_the_papers_layout(table):
    rows, _, _ = table
    text = markdown_table(list(rows.values()), NUM_LAYERS)
    lines = text.splitlines()
    assert lines[0] == "| Order | 0 (FP) | 1 | 2 | 3 (INT4) |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| Front-to-Back", "| Back-to-Front", "| Random (mean of 4)", "| LIS"]
    assert all(line.count("**") >= 4 for line in lines[2:])                 # 0 and all are shared: best everywhere
    best_at_1 = min(rows[o, 1]["ppl"] for o in ("front_to_back", "back_to_front", "random", "lis"))
    assert f"**{best_at_1:.3f}**" in text


def test_plot_writes_png_and_csv(table, tmp_path):
    rows, _, _ = table
    files = plot_table1(list(rows.values()), str(tmp_path), "tiny")
    assert files.png.stat().st_size > 1000 and files.csv.read_text().startswith("order,int4_layers,ppl")


def test_counts_beyond_the_model_are_rejected():
    with pytest.raises(ValueError, match="the model has 3 layers"):
        swap_counts(Table1Config(counts=[1, 4]), NUM_LAYERS)
    assert swap_counts(Table1Config(counts=[2, 1, 2]), NUM_LAYERS) == [0, 1, 2, 3]


def test_points_file_resumes_and_extends_a_run(session, lis_file, tmp_path):
    points = tmp_path / "points.json"
    first = Table1Config(int4_variant="rtn-int4-g32", counts=[1], orders=["front_to_back"], points_file=str(points))
    rows = table1_rows(session, first)
    calls = []
    real = session.perplexity
    session.perplexity = lambda layers, desc: calls.append(desc) or real(layers, desc)
    extended = Table1Config(int4_variant="rtn-int4-g32", counts=[1], orders=["front_to_back", lis_file],
                            points_file=str(points))
    again = table1_rows(session, extended)
    del session.perplexity
    assert again[:len(rows)] == rows
    assert calls == [f"{lis_file} k=1"]                  # only {1} is new: {}, {0}, {0, 1, 2} are kept
    assert [row["order"] for row in again[len(rows):]] == [lis_file] * 3
    other = Table1Config(int4_variant="rtn-int4-g64", counts=[1], orders=["front_to_back"], points_file=str(points))
    with pytest.raises(ValueError, match="holds perplexities of another setup"):
        table1_rows(session, other)


def test_profiling_files_are_labelled_by_name(table, lis_file):
    rows, _, _ = table
    text = markdown_table([dict(row, order=lis_file) for row in rows.values() if row["order"] == "lis"], NUM_LAYERS)
    assert text.splitlines()[2].startswith("| lis |")
