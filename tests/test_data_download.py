"""Built-in dataset downloads against a real HTTP server on 127.0.0.1 serving the shared MNIST
files: a correct download verifies, a corrupt one is deleted, an interrupted one resumes with a
Range request, and a second run reads the cache without a request. Nothing reaches the internet."""
import http.server
import threading
from pathlib import Path

import pytest

from dltrain.errors import DataError

LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES = "t10k-images-idx3-ubyte.gz"


class Server:
    """Serves a folder with Range support; ``corrupt`` files get a flipped byte, ``cut_at`` stops
    the first response of a file after that many bytes. ``requests`` logs (path, Range)."""

    def __init__(self, folder):
        self.folder, self.corrupt, self.cut_at, self.requests = Path(folder), set(), {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                path = server.folder / name
                server.requests.append((name, self.headers.get("Range")))
                if not path.exists():
                    self.send_error(404)
                    return
                data = bytearray(path.read_bytes())
                if name in server.corrupt:
                    data[len(data) // 2] ^= 0xFF
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = bytes(data[start:])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_at.pop(name, None)
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(shared_data):
    s = Server(shared_data / "mnist")
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_correct_download_verifies_and_second_run_uses_the_cache(server, cache):
    from dltrain.data.datasets import Dataset

    x, y = Dataset("mnist", "test", mirror=server.url).load(".")
    assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,)      # channels-last, as idx
    assert [int(c) for c in (y == 0).sum(keepdims=True)] == [980]
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted([IMAGES, LABELS])
    requests = len(server.requests)
    Dataset("mnist", "test", mirror=server.url).load(".")
    assert len(server.requests) == requests          # the cache answered


def test_corrupt_download_is_rejected_and_deleted(server, cache):
    from dltrain.data import datasets

    server.corrupt.add(LABELS)
    with pytest.raises(DataError, match="failed verification: the SHA-256 of its content"):
        datasets.files("mnist", "test", mirror=server.url)
    assert not (cache / "mnist" / LABELS).exists()
    assert not (cache / "mnist" / (LABELS + ".part")).exists()


def test_interrupted_download_resumes_with_a_range_request(server, cache, shared_data):
    from dltrain.data import datasets

    size = (shared_data / "mnist" / IMAGES).stat().st_size
    server.cut_at[IMAGES] = 500_000
    with pytest.raises(DataError, match="stopped after 500000 of"):
        datasets.files("mnist", "test", mirror=server.url)
    part = cache / "mnist" / (IMAGES + ".part")
    assert part.stat().st_size == 500_000 and not (cache / "mnist" / IMAGES).exists()
    progress = []
    paths = datasets.files("mnist", "test", mirror=server.url,
                           progress=lambda f, done, total: progress.append((f, done, total)))
    assert (IMAGES, "bytes=500000-") in server.requests
    assert paths[0].stat().st_size == size and not part.exists()
    images = [p for p in progress if p[0] == IMAGES]
    assert images[0][1] > 500_000 and images[-1][1] == images[-1][2] == size


def test_unreachable_mirror_is_a_data_error(cache):
    from dltrain.data import datasets

    with pytest.raises(DataError, match="downloading http://127.0.0.1:9/mnist/"):
        datasets.files("mnist", "test", mirror="http://127.0.0.1:9/mnist/")


def test_local_folder_and_data_dir_pointing_at_local_copies(shared_data, monkeypatch, cli, tmp_path):
    from dltrain.data import datasets

    assert datasets.files("mnist", "test", mirror=shared_data / "mnist")[0].parent == shared_data / "mnist"
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(shared_data))
    result = cli("datasets", "download", "mnist")
    assert result.exit_code == 0, result.output
    assert str(shared_data / "mnist" / IMAGES) in result.output
    assert "mnist" in cli("datasets", "list").output


def test_dataset_source_in_a_config(shared_data, monkeypatch, tmp_path):
    import yaml

    from dltrain import api

    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(shared_data))
    config = {"name": "mnist-tiny", "data": {
        "train": {"type": "dataset", "name": "mnist", "split": "test"},
        "validation": {"split": 0.5}, "preprocessing": [{"type": "rescale", "scale": 1 / 255}]},
        "model": {"input_shape": [28, 28, 1], "layers": ["flatten", {"type": "dense", "units": 10,
                                                                   "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
        "training": {"epochs": 1, "batch_size": 128}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = api.fit(str(path), run_dir=tmp_path / "run")
    assert result.history[-1]["val_accuracy"] > 0.6          # 0.77 after one epoch


def test_data_dir_holding_the_gz_files_is_read_in_place_and_never_modified(shared_data, monkeypatch,
                                                                             tmp_path):
    """DLTRAIN_DATA_DIR may be a folder of the four original MNIST files (no NAME/ level): they
    verify and are read where they are; for fashion_mnist, whose files have the same names, they
    fail verification and are left alone (not deleted), so it would be downloaded into NAME/."""
    from dltrain.data import datasets, download

    folder = tmp_path / "data"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        (folder / name).write_bytes((shared_data / "mnist" / name).read_bytes())
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(folder))
    monkeypatch.setattr(download, "fetch", lambda url, *a, **k: pytest.fail(f"downloaded {url}"))
    assert datasets.files("mnist", "test") == [folder / IMAGES, folder / LABELS]
    assert datasets.local("fashion_mnist", "test") is None
    assert sorted(p.name for p in folder.iterdir()) == sorted([IMAGES, LABELS])


def test_damaged_cache_file_is_replaced_by_a_fresh_download(server, cache):
    from dltrain.data import datasets

    (cache / "mnist").mkdir(parents=True)
    (cache / "mnist" / LABELS).write_bytes(b"not the labels")
    paths = datasets.files("mnist", "test", mirror=server.url)
    assert (LABELS, None) in server.requests and datasets.local("mnist", "test") == paths


def test_fashion_mnist_is_checked_by_the_authors_md5_and_says_it_is_unverified(server, cache):
    """No Fashion-MNIST copy is at hand: serving MNIST's files under its names must fail the MD5
    check (9fb629c4… is the well-known MD5 of MNIST's t10k images), the part must be deleted,
    and the message must say the pins are unverified."""
    from dltrain.data import datasets

    assert "unverified" in datasets.info("fashion_mnist").verification
    assert {d["name"]: d["verification"] for d in datasets.listing()}["fashion_mnist"].startswith(
        "unverified: pinned to the .gz files")
    with pytest.raises(DataError, match="its MD5 is 9fb629c4189551a2d022fa330f9573f3, expected bef4ecab") as caught:
        datasets.files("fashion_mnist", "test", mirror=server.url)
    assert "unverified" in caught.value.fix
    assert not (cache / "fashion_mnist" / (IMAGES + ".part")).exists()


def test_datasets_list_shows_how_each_is_verified(cli):
    result = cli("datasets", "list")
    assert result.exit_code == 0, result.output
    assert "mnist files are verified by: SHA-256" in " ".join(result.output.split())
    assert "fashion_mnist files are verified by: unverified: pinned to the .gz files" in " ".join(result.output.split())


def test_fit_shows_download_progress_through_its_callbacks(server, cache, cli, tmp_path):
    """A dataset fetched on first use by `fit`: api.fit hands the progress to each callback's
    on_download (library code prints nothing); the CLI's display prints a line per file."""
    import yaml

    from dltrain import api
    from dltrain.training.callbacks import Callback

    config = {"name": "mnist-tiny", "data": {
        "train": {"type": "dataset", "name": "mnist", "split": "test", "mirror": server.url},
        "validation": {"split": 0.5}, "preprocessing": [{"type": "rescale", "scale": 1 / 255}]},
        "model": {"input_shape": [28, 28, 1], "layers": ["flatten", {"type": "dense", "units": 10,
                                                                      "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "training": {"epochs": 1, "batch_size": 256}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))

    class Recorder(Callback):
        calls = []

        def on_download(self, file, done, total):
            self.calls.append((file, done, total))

    api.fit(str(path), run_dir=tmp_path / "run", callbacks=[Recorder()])
    size = (server.folder / IMAGES).stat().st_size
    assert (IMAGES, size, size) in Recorder.calls and any(c[0] == LABELS for c in Recorder.calls)

    for name in (IMAGES, LABELS):                         # start again from an empty cache
        (cache / "mnist" / name).unlink()
    result = cli("fit", path, "--run-dir", tmp_path / "run2", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"downloaded {IMAGES} ({size / 1e6:.1f} MB)" in result.output
    requests = len(server.requests)
    assert cli("fit", path, "--run-dir", tmp_path / "run3", "--quiet").exit_code == 0
    assert len(server.requests) == requests and "downloaded" not in cli(
        "fit", path, "--run-dir", tmp_path / "run4", "--quiet").output      # the cache answered
