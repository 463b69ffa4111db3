"""Commands over data: inspect a config's splits, list and download the built-in datasets."""


def inspect_data(config, overrides=()):
    """Per split of a config's data: samples, shapes, dtypes, class balance, ranges, NaN/Inf."""
    from dltrain.data.inspect import inspect

    return inspect(config, overrides)


def datasets():
    """The built-in datasets: {'datasets': [one dict each], 'cache': folder, 'note': text}."""
    from dltrain.data import datasets as builtin, download

    return {"datasets": builtin.listing(), "cache": str(download.cache_dir()),
            "note": builtin.environment_note()}


def download_dataset(name, mirror=None, progress=None):
    """Fetch every file of a built-in dataset into the cache and verify it: the files' paths.

    ``progress(file, done, total)`` is called as bytes arrive."""
    from dltrain.data import datasets as builtin

    data = builtin.info(name)
    return [path for split in data.splits for path in builtin.files(name, split, mirror, progress)]
