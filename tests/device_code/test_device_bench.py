"""The benchmark's plumbing (its numbers are for `make bench`, not for assertions on speed)."""
import json

from device_code.features import DAY_LAG_S, HISTORY_WINDOW_S, LAG_TOLERANCE_S
from device_code.simulator.bench import main


def test_bench_measures_every_reading_through_to_a_prediction(trained_model_dir, tmp_path, capsys):
    out_file = tmp_path / "bench-edge.json"
    assert main(["--model", str(trained_model_dir), "--readings", "40", "--cycles", "30",
                 "--json", str(out_file)]) == 0
    results = json.loads(out_file.read_text())
    assert results["pipeline"]["readings"] == results["pipeline"]["predictions"] == 40
    inference = results["inference"]
    assert inference["runtime"] == "litert"
    # A reading a minute: the trend model answers once a reading lies within the lag tolerance of a day
    # ago; a day and its tolerance fill the history, then the 30 cycles asked for follow.
    cycles = inference["cycles"]
    assert cycles["instantaneous"]["count"] == (DAY_LAG_S - LAG_TOLERANCE_S) // 60
    assert cycles["instantaneous"]["count"] + cycles["trend"]["count"] == HISTORY_WINDOW_S // 60 + 1 + 30
    for cycle in cycles.values():
        assert 0 < cycle["p50_ms"] <= cycle["p95_ms"] <= cycle["max_ms"]
    assert results["inference"]["rss_mib_peak"] >= results["inference"]["rss_mib_after_load"] > 0
    assert "readings/s" in capsys.readouterr().out
