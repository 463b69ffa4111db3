"""dltrain plot: a readable PNG with matplotlib, a terminal chart without it."""
import pytest

from dltrain import api, plot
from training_helpers import digits_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot")
    api.fit(digits_config(folder, epochs=3), run_dir=folder / "a")
    api.fit(digits_config(folder, epochs=2, optimizer={"type": "sgd", "learning_rate": 0.05}), run_dir=folder / "b")
    return folder / "a", folder / "b"


def test_png_has_a_panel_per_metric_and_the_learning_rate(runs, tmp_path, cli):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional extra `plot`")
    assert plot.panels([plot.read_history(r) for r in runs]) == ["loss", "accuracy", "lr"]
    result = cli("plot", *runs, "--output", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    result = cli("plot", runs[0])
    assert result.exit_code == 0 and (runs[0] / "curves.png").exists()


def test_terminal_chart_without_matplotlib(runs, monkeypatch, cli):
    monkeypatch.setattr(plot, "have_matplotlib", lambda: False)
    result = cli("plot", *runs)
    assert result.exit_code == 0, result.output
    for fragment in ("loss  (epochs 1..3)", "accuracy", "learning rate", "A: a train", "b: b validation"):
        assert fragment in result.output


def test_a_directory_without_metrics_is_a_config_error(tmp_path, cli):
    result = cli("plot", tmp_path)
    assert result.exit_code == 2 and "metrics.csv" in result.output
