"""dltrain.blas: one BLAS thread inside the block, the previous count restored after it."""
from dltrain import blas


def test_single_thread_restores_the_thread_count():
    before = blas.threads()
    with blas.single_thread():
        assert blas.threads() in (None, 1)
    assert blas.threads() == before


def test_single_thread_is_a_no_op_without_openblas(monkeypatch):
    monkeypatch.setattr(blas, "_functions", lambda: None)
    with blas.single_thread():
        assert blas.threads() is None
