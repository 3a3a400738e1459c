"""The profiling tool: the swap-order JSON (model, variant, method, parameters, order, per-step scores) that
the controller reads, for LIS and for the simple orders."""
import dataclasses

import pytest

from experiments.eval.config import CalibrationSection, ProfileConfig
from experiments.eval.profile_run import swap_order_record, write_swap_order
from morph.controller import load_swap_order
from morph.profiling import back_to_front, random_order
from tests.eval_support import tiny_eval_session


@pytest.fixture(scope="module")
def session(tiny_llama, tmp_path_factory):
    return tiny_eval_session(tiny_llama, tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def config(session) -> ProfileConfig:
    return ProfileConfig(int4_variant="rtn-int4-g32", calibration=CalibrationSection(file="valid.txt", seq_len=40, num_seqs=2))


def test_lis_record_is_read_by_the_controller(session, config, tmp_path):
    record = swap_order_record(session, config, progress=False)
    path = write_swap_order(record, tmp_path / "orders" / "lis.json")
    assert load_swap_order(path, session.num_layers) == tuple(record["order"])
    assert record["model"] == "tiny" and record["method"] == "lis" and record["variant"] == "rtn-int4-g32"
    assert record["model_hash"] == session.model_hash
    assert len(record["variant_hash"]) == 64 and record["variant_hash"] != record["model_hash"]
    assert [step["layer"] for step in record["steps"]] == record["order"]
    assert set(record["steps"][0]) == {"layer", "lts", "lrs", "mds", "lis"}
    assert record["steps"][0]["lts"] == record["lts"][record["order"][0]]
    assert record["parameters"] == {"coefficients": {"lts": 1.0, "lrs": 1.0, "mds": 1.0},
                                    "calibration": {"file": "valid.txt", "seq_len": 40, "num_seqs": 2}}
    assert record["profiling_seconds"] > 0 and record["profiling_cpu_seconds"] > 0


@pytest.mark.parametrize("method, seed", [("back_to_front", 0), ("random", 7)])
def test_simple_order_records_need_no_variant(session, config, method, seed):
    record = swap_order_record(session, dataclasses.replace(config, method=method, seed=seed))
    expected = back_to_front(session.num_layers) if method == "back_to_front" else random_order(session.num_layers, 7)
    assert record["order"] == list(expected) and record["parameters"] == {"seed": seed}
    assert "variant_hash" not in record and "steps" not in record
