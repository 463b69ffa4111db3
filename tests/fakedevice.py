"""A strict fake device: arrays that compute like numpy but refuse, as CuPy does, to cross to the host.

``fake`` is the array module of these arrays (what ``backend.array_module(x)`` returns for them),
spelled like cupy: ``fake.asarray(host)`` moves an array to the "device", ``fake.asnumpy(x)``
moves it back, and every other ``fake.foo`` is numpy's ``foo`` on device arrays. What raises:

- ``np.asarray(x)``, ``np.array(x)``, any ``np.foo(x)`` or numpy ufunc called on a device array
  (cupy accepts some of them; the library must take its array module from its input instead);
- writing a device array into a host buffer (``host[...] = x``, ``np.copyto``, ``out=host``);
- mixing host and device arrays in one operation (``x + host``, ``fake.foo(x, host)``,
  a host array as an index or a value assigned into a device array); Python and numpy
  scalars are fine, as in cupy;
- ``ufunc.at`` (a serialized scatter; DESIGN.md keeps it out of hot paths);
- inside ``hot_path()``: any read back to the host (``float(x)``, ``int(x)``, ``bool(x)``,
  ``x.item()``, ``x.tolist()``, ``fake.asnumpy(x)``), each of which is a device sync in cupy.

Results equal numpy's exactly: the fake array holds a numpy array and calls numpy on it.
"""
import contextlib
import operator
import types

import numpy as np


class HostConversionError(TypeError):
    """A device array would be turned into (or mixed with) a host array implicitly."""


class DeviceSyncError(RuntimeError):
    """A value was read back to the host inside a hot path."""


_hot = [0]
#: how many reads back to the host there have been (each is a device sync in cupy)
reads = [0]


@contextlib.contextmanager
def hot_path():
    """Inside: any read back to the host raises DeviceSyncError (a per-batch sync in cupy)."""
    _hot[0] += 1
    try:
        yield
    finally:
        _hot[0] -= 1


def _sync(what):
    reads[0] += 1
    if _hot[0]:
        raise DeviceSyncError(f"{what} reads a device array back to the host inside a hot path "
                              "(a device sync per batch); keep it on the device, read back once per "
                              "logging step")


def _host_error(where):
    return HostConversionError(f"{where}: a host numpy array is mixed with device arrays; move it "
                               "with xp.asarray(...) first (xp = backend.array_module(x))")


def _unwrap(value, where):
    """Device arrays to their numpy payload, recursively in lists and tuples; host arrays raise."""
    if type(value) is FakeArray:
        return value._a
    if isinstance(value, np.ndarray):
        raise _host_error(where)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where) for v in value)
    return value


def _wrap(value):
    """numpy arrays (and numpy scalars: cupy's reductions give 0-d arrays) as device arrays."""
    if isinstance(value, np.ndarray):
        return FakeArray(value)
    if isinstance(value, np.generic):
        return FakeArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _call(function, args, kwargs, where):
    out = kwargs.get("out")
    if isinstance(out, np.ndarray) or (isinstance(out, tuple) and any(isinstance(o, np.ndarray) for o in out)):
        raise HostConversionError(f"{where}: out= is a host numpy array; a device result cannot be "
                                  "written into a host buffer")
    args = _unwrap(args, where)
    kwargs = {k: _unwrap(v, where) for k, v in kwargs.items()}
    result = function(*args, **kwargs)
    if out is not None and result is kwargs["out"]:
        return out
    return _wrap(result)


class FakeArray:
    """A device array: numpy inside, no implicit way out."""

    __slots__ = ("_a",)
    __array_ufunc__ = None          # numpy's operators defer to ours; np.exp(x) raises TypeError
    __array_priority__ = 1000

    def __init__(self, array):
        assert isinstance(array, np.ndarray)
        self._a = array

    # -- the ways out, refused ----------------------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        raise HostConversionError("implicit conversion of a device array to a host numpy array "
                                  "(np.asarray/np.array/host[...] = x); use xp.asnumpy(x) where a "
                                  "host copy is meant")

    def __array_function__(self, func, types, args, kwargs):
        raise HostConversionError(f"numpy.{func.__name__} called on a device array; take the array "
                                  "module from the input: xp = backend.array_module(x)")

    def get(self):
        _sync("x.get()")
        return self._a.copy()

    def item(self, *args):
        _sync("x.item()")
        return self._a.item(*args)

    def tolist(self):
        _sync("x.tolist()")
        return self._a.tolist()

    def tobytes(self, *args, **kwargs):
        _sync("x.tobytes()")
        return self._a.tobytes(*args, **kwargs)

    def __float__(self):
        _sync("float(x)")
        return float(self._a)

    def __int__(self):
        _sync("int(x)")
        return int(self._a)

    def __index__(self):
        _sync("using a device array as an index")
        return operator.index(self._a)

    def __bool__(self):
        _sync("bool(x) (an `if` or `and` on a device array)")
        return bool(self._a)

    def __complex__(self):
        _sync("complex(x)")
        return complex(self._a)

    def __repr__(self):
        return f"fake.array({self._a!r})"

    __str__ = __repr__

    # -- what stays on the device -------------------------------------------------------------

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def dtype(self):
        return self._a.dtype

    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: FakeArray(self._a.T))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base)
                    if isinstance(self._a.base, np.ndarray) else None)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __getattr__(self, name):
        if name.startswith("__"):            # __array_interface__ and kin would let numpy in
            raise AttributeError(name)
        attribute = getattr(self._a, name)
        if callable(attribute):
            return lambda *args, **kwargs: _call(attribute, args, kwargs, f"x.{name}()")
        return _wrap(attribute)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "x[index]")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "x[index] = ...")] = _unwrap(value, "x[...] = value")

    def __deepcopy__(self, memo):
        return FakeArray(self._a.copy())

    def __copy__(self):
        return FakeArray(self._a.copy())

    def __neg__(self):
        return FakeArray(-self._a)

    def __pos__(self):
        return FakeArray(+self._a)

    def __abs__(self):
        return FakeArray(abs(self._a))

    def __invert__(self):
        return FakeArray(~self._a)

    __hash__ = None


def _operand(other, where):
    if type(other) is FakeArray:
        return other._a
    if isinstance(other, np.ndarray):
        raise _host_error(where)
    if isinstance(other, (int, float, complex, bool, np.generic)):
        return other
    return None


def _binary(name):
    op = getattr(operator, name)

    def forward(self, other):
        value = _operand(other, f"x {name} y")
        return NotImplemented if value is None else _wrap(op(self._a, value))

    def reflected(self, other):
        value = _operand(other, f"y {name} x")
        return NotImplemented if value is None else _wrap(op(value, self._a))

    inplace = getattr(operator, f"i{name.rstrip('_')}", None)

    def in_place(self, other):
        value = _operand(other, f"x {name}= y")
        if value is None:
            return NotImplemented
        self._a = inplace(self._a, value)
        return self

    return forward, reflected, in_place


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_",
              "xor", "lshift", "rshift"):
    _forward, _reflected, _in_place = _binary(_name)
    _dunder = _name.rstrip("_")
    setattr(FakeArray, f"__{_dunder}__", _forward)
    setattr(FakeArray, f"__r{_dunder}__", _reflected)
    setattr(FakeArray, f"__i{_dunder}__", _in_place)
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(FakeArray, f"__{_name}__", _binary(_name)[0])


class _Ufunc:
    """A numpy ufunc on device arrays; ``.at`` refused."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs, f"xp.{self.__name__}")

    def __getattr__(self, name):
        if name == "at":
            raise HostConversionError(f"xp.{self.__name__}.at: a serialized scatter; DESIGN.md keeps "
                                      "ufunc.at out of hot paths (use a matrix product or bincount)")
        method = getattr(self._ufunc, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: _call(method, args, kwargs, f"xp.{self.__name__}.{name}")


class _Namespace(types.ModuleType):
    """numpy's names over device arrays, like cupy's module."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._numpy = numpy_module

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._numpy, name)
        if isinstance(value, np.ufunc):
            value = _Ufunc(value)
        elif isinstance(value, types.ModuleType):
            value = _Namespace(f"{self.__name__}.{name}", value)
        elif callable(value) and not isinstance(value, type):
            function = value
            value = lambda *args, **kwargs: _call(function, args, kwargs, f"xp.{name}")  # noqa: E731
        setattr(self, name, value)
        return value


fake = _Namespace("fake", np)
fake.ndarray = FakeArray
fake.random = None              # the library's randomness is host numpy Generators, moved


def _asarray(a, dtype=None, **kwargs):
    """To the device (an explicit host -> device move, allowed anywhere)."""
    if type(a) is FakeArray:
        return a if dtype is None or a.dtype == dtype else FakeArray(a._a.astype(dtype))
    return FakeArray(np.array(_unwrap_lenient(a), dtype=dtype, **kwargs))


def _unwrap_lenient(a):
    if type(a) is FakeArray:
        return a._a
    if isinstance(a, (list, tuple)):
        return type(a)(_unwrap_lenient(v) for v in a)
    return a


def _asnumpy(a, out=None):
    """To the host (an explicit device -> host move: a sync, refused in a hot path)."""
    if type(a) is not FakeArray:
        return np.asarray(a)
    _sync("xp.asnumpy(x)")
    if out is not None:
        out[...] = a._a
        return out
    return a._a.copy()


def _get_array_module(*arrays):
    return fake if any(type(a) is FakeArray for a in arrays) else np


fake.asarray = _asarray
fake.array = lambda a, dtype=None, copy=True, **kwargs: (
    FakeArray(a._a.astype(dtype or a.dtype, copy=True)) if type(a) is FakeArray
    else _asarray(a, dtype, **kwargs))
fake.asnumpy = _asnumpy
fake.get_array_module = _get_array_module


def to_device(tree):
    """Host arrays (in dicts, lists and tuples) moved to the fake device."""
    if isinstance(tree, np.ndarray):
        return fake.asarray(tree)
    if isinstance(tree, dict):
        return {k: to_device(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_device(v) for v in tree)
    return tree


def to_host(tree):
    if type(tree) is FakeArray:
        return fake.asnumpy(tree)
    if isinstance(tree, dict):
        return {k: to_host(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_host(v) for v in tree)
    return tree


from dltrain.backend import register_array_type  # noqa: E402

register_array_type(FakeArray, fake)


class _FakeCuda(types.SimpleNamespace):
    """``cupy.cuda`` of a machine with ``gpus`` fake GPUs: the device count, ``Device(i).use()``
    (``used`` lists every ordinal made current), a stream whose synchronize does nothing."""

    def __init__(self, gpus):
        cuda = self
        super().__init__(used=[], current=0)

        class Device:
            def __init__(self, index=None):
                self.id = cuda.current if index is None else int(index)

            def use(self):
                if not 0 <= self.id < gpus:
                    raise RuntimeError(f"fake CUDA: invalid device ordinal {self.id} ({gpus} GPUs)")
                cuda.current = self.id
                cuda.used.append(self.id)

        stream = types.SimpleNamespace(synchronize=lambda: None)
        self.Device = Device
        self.get_current_stream = lambda: stream
        self.runtime = types.SimpleNamespace(getDeviceCount=lambda: gpus,
                                             getDeviceProperties=lambda index: {"name": b"fake GPU"})


def fake_cupy(available=True, gpus=1):
    """A stand-in for the ``cupy`` module over the fake device: ``import cupy`` finds it when it
    is put in sys.modules, and ``is_available()`` answers ``available`` (True, False, or an
    exception to raise, as cupy raises CUDARuntimeError without a driver); ``cuda`` is a machine
    with ``gpus`` GPUs (all of them the one fake device)."""
    module = _Namespace("fakecupy", np)
    module.cuda = _FakeCuda(gpus)
    module.ndarray = FakeArray
    module.asarray, module.array, module.asnumpy = fake.asarray, fake.array, fake.asnumpy
    module.get_array_module = _get_array_module
    module.random = None

    def is_available():
        if isinstance(available, BaseException):
            raise available
        return available

    module.is_available = is_available
    return module
