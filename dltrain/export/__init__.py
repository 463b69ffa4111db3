"""Models that leave dltrain and come back: ONNX export, safetensors out and in, .keras import.

``export(run, format, output)`` writes a trained run as an ONNX model (onnx_model: preprocessing
folded in, every layer converted or named in an error) or as a safetensors file of the model's
arrays under dltrain's names (safetensors), and says what was written (``Exported``: the file,
and for ONNX what its input is). ``weights`` reads such arrays back, from a run, a safetensors
file or a .keras file, for ``init_from``.
"""
from dataclasses import dataclass
from pathlib import Path

from dltrain.errors import ConfigError

FORMATS = ("onnx", "safetensors")
TEXT_INPUTS = ("strings", "ids")


@dataclass
class Exported:
    """A file ``export`` wrote: its ``path``, and for ONNX its ``input`` ({name, shape, dtype,
    expects}: raw texts for a text model, or what the model takes instead and why)."""
    path: Path
    format: str
    input: dict = None


def export(loaded, format="onnx", output=None, text_input="strings"):
    """Write ``loaded`` (an api.LoadedRun) as ``format``; return what was written (``Exported``).
    ``text_input``: a text model's ONNX input, raw ``strings`` or the token ``ids`` (for runtimes
    without string operators)."""
    from dltrain.training.files import atomic_open

    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}", expected=" or ".join(FORMATS))
    if text_input not in TEXT_INPUTS:
        raise ConfigError(f"unknown text input {text_input!r}", expected=" or ".join(TEXT_INPUTS))
    output = Path(output) if output else loaded.run_dir / f"model.{format}"
    described = None
    if format == "onnx":
        from dltrain.export import onnx_model

        strings = text_input == "strings"
        data, _ = onnx_model.convert(loaded, strings)
        described = onnx_model.input_description(loaded.model, loaded.experiment.pipeline, strings)
    else:
        from dltrain.export import safetensors

        data = safetensors.encode(loaded.model.state_dict(), safetensors.metadata_of(loaded))
    with atomic_open(output, "wb") as f:
        f.write(data)
    return Exported(output, format, described)
