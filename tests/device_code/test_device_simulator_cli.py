"""The simulator fails fast, in one line, on what would otherwise hang or fail after the run
(issue 9, section 4): a taken moto port, a --plot that cannot be written."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from device_code.simulator.__main__ import main
from device_code.simulator.cloud import CloudUnavailable, MotoCloud


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_port_fails_at_once_instead_of_hanging(taken_port):
    outcome: list[BaseException | MotoCloud] = []

    def start() -> None:
        try:
            outcome.append(MotoCloud(taken_port).start())
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    began = time.monotonic()
    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    starter.join(timeout=10)
    assert outcome, "MotoCloud.start() still waits on a taken port"
    assert isinstance(outcome[0], CloudUnavailable) and time.monotonic() - began < 5
    assert f"127.0.0.1:{taken_port}" in str(outcome[0]) and "in use" in str(outcome[0])


def test_the_default_port_is_one_the_system_picks_and_serves(taken_port):
    with MotoCloud() as cloud:
        assert cloud.port not in (0, taken_port)
        cloud.create_thing("pi-1")
        assert cloud.reported("pi-1", "weather") is None


def test_the_demo_on_a_taken_port_stops_with_one_line_before_the_run(trained_model_dir, synthesized, tmp_path,
                                                                      taken_port, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(trained_model_dir), "--cdk-out", str(synthesized[0]), "--steps", "3",
              "--moto-port", str(taken_port), "--plot", str(tmp_path / "demo.png")])
    assert str(stop.value).startswith(f"simulator: cannot start the moto server on 127.0.0.1:{taken_port}")
    assert "pick another --moto-port" in str(stop.value) and "\n" not in str(stop.value)
    assert "P(rain)" not in capsys.readouterr().out


@pytest.mark.parametrize("plot, problem", [
    ("file/demo.png", "cannot be written (File exists: "),  # its folder is a file
    ("folder", "name a .png file"),
    ("folder.png", "cannot be written (Is a directory: "),
    ("demo.txt", "name a .png file"),
])
def test_a_plot_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, plot, problem):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.png").mkdir()
    began = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path / "no-model"), "--plot", str(tmp_path / plot)])
    assert stop.value.code == 2 and time.monotonic() - began < 5
    err = capsys.readouterr().err
    assert f"--plot {tmp_path / plot}: {problem}" in err


def test_a_writable_plot_path_is_left_as_it_was(tmp_path):
    plot = tmp_path / "new" / "demo.png"
    with pytest.raises(SystemExit, match="run `make train`"):  # the next check, after the plot's
        main(["--model", str(tmp_path / "no-model"), "--plot", str(plot)])
    assert not plot.exists()


def test_a_cloud_assembly_path_that_is_a_file_says_where_to_point(trained_model_dir, tmp_path):
    (tmp_path / "cdk.out").write_text("")
    with pytest.raises(SystemExit, match=r"cannot read .*cdk.out/RainEdge.template.json \(Not a directory\): "
                                         r"point --cdk-out at the folder `make synth` writes"):
        main(["--model", str(trained_model_dir), "--cdk-out", str(tmp_path / "cdk.out"), "--plot",
              str(tmp_path / "demo.png")])
