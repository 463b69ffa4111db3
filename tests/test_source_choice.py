"""predict and evaluate --data pick a reader by file name and by the family of the training source."""
import gzip

import numpy as np
import pytest

from dltrain.data.idx import Idx
from dltrain.data.images import ImageFolder
from dltrain.data.csv_source import Csv
from dltrain.data.sources import Npz, for_file
from dltrain.data.text import TextCsv, TextFolder, TextLines
from dltrain.data.timeseries import Timeseries
from dltrain.errors import DataError


@pytest.fixture
def files(tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "reviews.txt").write_text("good\nbad\n")
    (tmp_path / "folder").mkdir()
    header = np.array([0, 0, 8, 1, 0, 0, 0, 2], dtype=np.uint8).tobytes()
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(header + bytes([3, 4]))
    np.savez(tmp_path / "arrays.npz", x=np.zeros((2, 3)))
    (tmp_path / "notes.xyz").write_text("?")
    return tmp_path


def test_a_csv_is_read_as_the_training_data_was(files):
    assert type(for_file(files / "table.csv")) is Csv
    assert type(for_file(files / "table.csv", Csv("train.csv"))) is Csv
    assert type(for_file(files / "table.csv", TextCsv("train.csv"))) is TextCsv
    # a run trained on lines of text reads a CSV as text, not numbers
    assert isinstance(for_file(files / "table.csv", TextLines("train.txt")), TextCsv)
    assert type(for_file(files / "table.csv", Timeseries("train.csv", target="a", window=2))) is Timeseries


def test_a_folder_is_read_by_the_training_family(files):
    assert type(for_file(files / "folder", TextFolder("train"))) is TextFolder
    assert type(for_file(files / "folder", TextLines("train.txt"))) is TextFolder
    assert type(for_file(files / "folder", ImageFolder("train"))) is not TextFolder


def test_an_idx_file_is_recognized_by_its_whole_name(files):
    # Path.suffixes of 't10k-labels-idx1-ubyte.gz' is ['.gz']: the name must be matched whole
    assert type(for_file(files / "t10k-labels-idx1-ubyte.gz")) is Idx
    assert type(for_file(files / "arrays.npz")) is Npz


def test_an_unknown_extension_names_the_file_and_the_known_ones(files):
    with pytest.raises(DataError, match=r"notes\.xyz: cannot tell how to read a .\.xyz. file"):
        for_file(files / "notes.xyz")


def test_a_file_without_an_extension_is_not_called_a_folder(files):
    (files / "passwd").write_text("root:x:0:0\n")
    with pytest.raises(DataError, match="a file without an extension"):
        for_file(files / "passwd")
