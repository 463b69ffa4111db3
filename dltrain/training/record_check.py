"""A checkpoint's JSON record checked key by key before anything uses it: the format version,
then every key evaluate/predict (and, for --resume, the training loop) reads, with its type. All
problems are reported at once, naming the file (CheckpointError, exit 5)."""
from dltrain.errors import CheckpointError

#: what every reader needs, what scoring a run (evaluate, predict) needs, and resuming
REQUIRED = {"format_version": int, "sha256": str}
RUN = {"config": dict}
RESUME = {"config": dict, "epoch": int, "step": int, "random": dict, "callbacks": list, "history": list}
TYPE_NAMES = {int: "an integer", str: "a string", dict: "a mapping", list: "a list"}


def problems(meta, version, keys=None):
    if not isinstance(meta, dict):
        return [f"the record is {type(meta).__name__}, not a mapping"]
    found = []
    for key, kind in {**REQUIRED, **(keys or {})}.items():
        if key not in meta:
            found.append(f"the key {key!r} is missing")
        elif not isinstance(meta[key], kind) or (kind is int and isinstance(meta[key], bool)):
            found.append(f"{key!r} is {type(meta[key]).__name__}, not {TYPE_NAMES[kind]}")
    have = meta.get("format_version")
    if isinstance(have, int) and have != version:
        found.append(f"it has format version {have}, this dltrain reads version {version}"
                     + (" (written by a newer dltrain)" if have > version else ""))
    return found


def check(meta, path, version, keys=None):
    """Raise a CheckpointError listing every problem of ``meta`` (``keys``: RUN or RESUME, what
    the caller reads besides); return it when there is none."""
    found = problems(meta, version, keys)
    if found:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be used: " + "; ".join(found),
                              fix="use another checkpoint (previous.npz, --checkpoint last), or "
                                  "the dltrain version that wrote it, or retrain.")
    return meta
