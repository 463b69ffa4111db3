"""`dltrain data inspect` on every example config (the text ones raised a ValueError traceback:
it converted the texts to float for the value range)."""
import pytest

from conftest import CONFIGS, skip_without_data


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")
                                          if "mnist" not in p.name))
def test_data_inspect_runs_on_every_example_config(config, cli):
    skip_without_data(CONFIGS / config)
    result = cli("data", "inspect", CONFIGS / config)
    assert result.exit_code == 0, result.output
    assert "samples" in result.output


def test_text_sources_report_lengths_in_characters(cli):
    skip_without_data(CONFIGS / "sms_spam_bow.yaml")
    from dltrain.data.inspect import inspect

    report = inspect(str(CONFIGS / "sms_spam_bow.yaml"))
    low, high, mean = report["splits"]["train"]["characters"]
    assert 0 < low <= mean <= high and report["splits"]["train"]["min"] is None
