"""The benchmark's plumbing (its numbers are for `make bench`, not for assertions on speed)."""
import json

from device_code.simulator.bench import main


def test_bench_measures_every_reading_through_to_a_prediction(trained_model_dir, tmp_path, capsys):
    out_file = tmp_path / "bench-edge.json"
    assert main(["--model", str(trained_model_dir), "--readings", "40", "--cycles", "30",
                 "--json", str(out_file)]) == 0
    results = json.loads(out_file.read_text())
    assert results["pipeline"]["readings"] == results["pipeline"]["predictions"] == 40
    assert results["inference"]["runtime"] == "litert" and results["inference"]["cycles"] == 30
    assert results["inference"]["rss_mib_peak"] >= results["inference"]["rss_mib_after_load"] > 0
    assert "readings/s" in capsys.readouterr().out
