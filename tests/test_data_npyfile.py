"""Every .npy/.npz read checks header, dtype and shape against the bytes there and a size bound
before it allocates (dltrain/data/npyfile.py): data sources and checkpoints alike.

The findings' tests (a data .npz and a checkpoint declaring a huge shape) go through api.fit and
checkpoint.load only, and npyfile is imported inside the tests that use it, so this file also
runs against the code before npyfile existed: there those two fail (MemoryError), not the import."""
import io
import json
import zipfile

import numpy as np
import pytest

from dltrain import api
from dltrain.errors import CheckpointError, DataError
from dltrain.training import checkpoint
from training_helpers import DIGITS, digits_config


def npy_bytes(shape, descr="<f4", data=b"\0" * 64):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return f.getvalue() + data


def write_npz(path, members, compress=False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, payload in members.items():
            z.writestr(name + ".npy", payload)


def test_reads_what_numpy_writes(tmp_path):
    from dltrain.data import npyfile

    arrays = {"a": np.arange(12, dtype=np.int16).reshape(3, 4), "b": np.asfortranarray(np.ones((2, 5))),
              "c": np.zeros((0, 3), np.float32), "d": np.array(7.5)}
    for compress, save in ((False, np.savez), (True, np.savez_compressed)):
        save(tmp_path / "x.npz", **arrays)
        got = npyfile.read_npz(tmp_path / "x.npz")
        assert got.keys() == arrays.keys()
        for k in arrays:
            assert got[k].dtype == arrays[k].dtype and np.array_equal(got[k], arrays[k])
    np.save(tmp_path / "x.npy", arrays["a"])
    assert np.array_equal(npyfile.open_npy(tmp_path / "x.npy"), arrays["a"])


def test_a_data_npz_declaring_a_huge_shape_is_a_data_error_not_an_allocation(tmp_path):
    # today np.load tries to allocate 4 TB for the member (MemoryError, a traceback)
    write_npz(tmp_path / "huge.npz", {"x": npy_bytes((10**12,)), "y": npy_bytes((16,))})
    config = digits_config(tmp_path, epochs=1)
    text = config.read_text().replace(str(DIGITS), str(tmp_path / "huge.npz"))
    config.write_text(text)
    with pytest.raises(DataError) as caught:
        api.fit(config, run_dir=tmp_path / "run")
    assert "huge.npz" in str(caught.value) and "(1000000000000,)" in str(caught.value)


def test_compressed_member_claiming_more_than_deflate_can_give_is_refused(tmp_path):
    from dltrain.data import npyfile

    write_npz(tmp_path / "bomb.npz", {"x": npy_bytes((4,), data=b"\0" * 16)}, compress=True)
    raw = bytearray((tmp_path / "bomb.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "bomb.npz") as z:
        info = z.infolist()[0]
    # patch the central directory's uncompressed size to 4 GB
    at = raw.rfind(b"PK\x01\x02")
    raw[at + 24:at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    (tmp_path / "bomb.npz").write_bytes(bytes(raw))
    assert info.compress_size < 100
    with pytest.raises(npyfile.FormatError, match="claims"):
        npyfile.read_npz(tmp_path / "bomb.npz")


@pytest.mark.parametrize("shape, data, words", [
    ((1000, 1000), b"\0" * 64, "but 64 bytes"),                # header bigger than the data
    ((4,), b"\0" * 64, "but 64 bytes"),                        # data longer than the header says
    ((-3, 2), b"", "invalid shape"),
])
def test_npy_header_inconsistent_with_the_file_names_it(tmp_path, shape, data, words):
    from dltrain.data import npyfile

    path = tmp_path / "x.npy"
    path.write_bytes(npy_bytes(shape, data=data))
    with pytest.raises(npyfile.FormatError, match=words):
        npyfile.open_npy(path)


def test_object_dtype_is_refused_before_reading(tmp_path):
    from dltrain.data import npyfile

    write_npz(tmp_path / "o.npz", {"x": npy_bytes((2,), descr="|O")})
    with pytest.raises(npyfile.FormatError, match="pickle"):
        npyfile.read_npz(tmp_path / "o.npz")


def test_a_size_bound_applies_to_arrays_read_into_memory(tmp_path, monkeypatch):
    from dltrain.data import npyfile

    np.savez(tmp_path / "x.npz", x=np.zeros(1000, np.float64))
    monkeypatch.setattr(npyfile, "MAX_ARRAY_BYTES", 4000)
    with pytest.raises(npyfile.FormatError, match="8,000 bytes, more than the 4,000 allowed"):
        npyfile.read_npz(tmp_path / "x.npz")


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run"
    api.fit(digits_config(tmp_path, epochs=1), run_dir=path)
    return path


def rewrite_checkpoint(path, change):
    """Rewrite a checkpoint's members through ``change(name, npy bytes) -> npy bytes``."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename[:-4]: z.read(i) for i in z.infolist()}
    write_npz(path, {k: change(k, v) for k, v in members.items()})


def test_a_checkpoint_member_declaring_a_huge_shape_is_a_checkpoint_error(run):
    last = run / "checkpoints" / "last.npz"
    victim = sorted(k for k in checkpoint.load(last)[0] if k.startswith("model/"))[0]
    rewrite_checkpoint(last, lambda k, v: npy_bytes((10**6, 10**6), data=v[128:]) if k == victim else v)
    with pytest.raises(CheckpointError) as caught:
        checkpoint.load(last)
    assert "last.npz" in str(caught.value) and "1000000" in str(caught.value)


def test_the_checkpoint_record_has_a_size_bound(run, monkeypatch):
    from dltrain.data import npyfile

    last = run / "checkpoints" / "last.npz"
    size = len(json.dumps(checkpoint.load(last)[1]))
    monkeypatch.setattr(npyfile, "MAX_RECORD_BYTES", size // 2)
    # the bound is read when load() is called: the module attribute is the one place it lives
    with pytest.raises(CheckpointError, match="allowed"):
        checkpoint.load(last)
