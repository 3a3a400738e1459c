"""benchmarks/bench_gpu.py runs end to end (here on the CPU, with a tiny model and small points: a smoke test of the
code the GPU check runs, not a measurement)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_gpu  # noqa: E402


def test_the_gpu_benchmark_runs_every_section_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_gpu.main(["--device", "cpu", "--model", "random:tiny-llama", "--layers", "2", "--dtype", "float32",
                    "--batches", "1", "3", "--contexts", "16", "40", "--prefill-tokens", "48", "--copy-mib", "8",
                    "--kv-grow-blocks", "32", "--budget-gib", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert [(p["precision"], p["batch"], p["context"]) for p in result["decode"]] == [
        (precision, batch, context) for precision in ("fp", "int8", "int4") for batch in (1, 3) for context in (16, 40)]
    assert all(p["step_ms"] > 0 and p["achieved_GBps"] > 0 for p in result["decode"])
    fp, int4 = result["decode"][0], result["decode"][8]
    assert int4["bytes"] < fp["bytes"]                            # an INT4 step reads fewer weight bytes
    assert [p["precision"] for p in result["prefill"]] == ["fp", "int8", "int4"]
    assert len(result["swap"]["fp_to_int4_copy_ms"]) == len(result["swap"]["int4_to_fp_copy_ms"]) == 2
    assert [s["target"] for s in result["stall"]] == ["int4", "fp"] and result["kv_resize"]["grow_ms"] > 0
    assert result["start"]["engine_warm_up_first_seconds"] > 0
    assert "of floor" in capsys.readouterr().out
