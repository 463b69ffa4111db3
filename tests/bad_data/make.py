"""Writes the binary files of the bad-data corpus (the CSVs are written by hand).

Run from this folder: python make.py. Each file is described in cases.yaml.
"""
import numpy as np

x = np.arange(15, dtype=np.float32).reshape(5, 3)
y = np.array([0, 1, 2, 0, 1])

nan_x = x.copy()
nan_x[3, 1] = np.nan
np.save("nan_features.npy", nan_x)
inf_x = x.copy()
inf_x[2, 0] = np.inf
np.savez("inf_features.npz", x=inf_x, y=y)
np.savez("nan_labels.npz", x=x, y=np.array([0, 1, np.nan, 0, 1]))
np.save("truncated.npy", x)
with open("truncated.npy", "r+b") as f:
    f.truncate(100)
with open("garbage.npy", "wb") as f:
    f.write(np.random.default_rng(0).bytes(300))
np.savez("object_array.npz", x=np.array([[1, 2, 3], "a", None], dtype=object), y=y[:3])
np.savez("truncated.npz", x=x, y=y)
with open("truncated.npz", "r+b") as f:
    f.truncate(300)
np.savez("length_mismatch.npz", x=x, y=y[:4])
np.savez("no_x_array.npz", features=x, y=y)
np.savez("string_array.npz", x=np.array([["a", "b", "c"]] * 5), y=y)
np.savez("wrong_width.npz", x=np.zeros((5, 4), np.float32), y=y)
np.save("scalar.npy", np.float32(3.0))
np.save("features.npy", x)
np.save("short_labels.npy", y[:3])
np.savez("labels_outside_classes.npz", x=x, y=np.array([0, 1, 2, 3, -1]))
