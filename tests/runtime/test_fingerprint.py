"""Item fingerprints of large arrays and buffers are a bounded sample (see fingerprint())."""

from __future__ import annotations

import pickle
from typing import Any

import numpy
import pytest

from checkpointify.runtime import fingerprint
from checkpointify.runtime.fingerprint import _blake2b


def _full(item: Any) -> bytes:
    """The fingerprint of an object hashed whole, as before sampling: its pickle."""
    data = pickle.dumps(item, 4)
    h = _blake2b(digest_size=8)
    h.update(b"P%d:" % len(data))
    h.update(data)
    return h.digest()


@pytest.fixture()
def batch() -> Any:
    return numpy.random.default_rng(0).random((64, 3, 32, 32), dtype=numpy.float32)  # 768 KiB


def test_an_array_and_its_copies_in_any_layout_share_a_fingerprint(batch: Any) -> None:
    fp = fingerprint(batch)
    assert fingerprint(batch.copy()) == fp
    assert fingerprint(numpy.asfortranarray(batch)) == fp  # strided: read element by element
    assert fingerprint(batch[:, :, ::2]) == fingerprint(numpy.ascontiguousarray(batch[:, :, ::2]))


LAYOUTS = {
    "every-other-column": lambda rng: rng.integers(0, 255, (2_000, 1_600), dtype=numpy.uint8)[:, ::2],
    "transposed": lambda rng: rng.random((600, 500)).T,
    "fortran": lambda rng: numpy.asfortranarray(rng.random((600, 500))),
    "reversed-4d": lambda rng: rng.random((20, 30, 40, 50))[:, ::-1, :, ::3],
    "long-rows": lambda rng: rng.random((2, 4_000_000))[:, ::2],
    "short-rows": lambda rng: rng.random((400_000, 3))[:, ::2],
    "1d-strided": lambda rng: rng.random(2_000_000)[::3],
    "datetime": lambda rng: numpy.arange(10**6).astype("datetime64[s]").reshape(1000, 1000)[:, ::2],
}


@pytest.mark.parametrize("make", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_a_strided_array_has_the_fingerprint_of_its_contiguous_copy(make: Any) -> None:
    array = make(numpy.random.default_rng(1))
    assert not array.flags.c_contiguous and array.nbytes > 256 * 1024
    copy = numpy.ascontiguousarray(array)
    assert fingerprint(array) == fingerprint(copy)
    changed = copy.copy()
    changed.reshape(-1)[1] = changed.reshape(-1)[0] if changed.reshape(-1)[1] != changed.reshape(-1)[0] else 0
    assert fingerprint(changed) != fingerprint(array)  # a sampled element (the head)


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a.__setitem__((0, 0, 0, 0), 7.0),  # the first bytes
        lambda a: a.__setitem__((-1, -1, -1, -1), 7.0),  # the last bytes
        lambda a: a.reshape(-1).__setitem__(a.size // 2 - (a.size // 2) % 256, 7.0),  # a sampled block
    ],
    ids=["head", "tail", "sampled-block"],
)
def test_a_change_in_the_sample_is_seen(batch: Any, change: Any) -> None:
    changed = batch.copy()
    change(changed)
    assert fingerprint(changed) != fingerprint(batch)


def test_shape_dtype_and_type_count(batch: Any) -> None:
    fps = {
        fingerprint(batch),
        fingerprint(batch.reshape(64, 3, 1024)),
        fingerprint(batch.view(numpy.int32)),
        fingerprint(bytes(batch.tobytes())),
    }
    assert len(fps) == 4


def test_what_sampling_does_not_see(batch: Any) -> None:
    """Documented: a change between the sampled blocks is not detected."""
    changed = batch.copy()
    flat = changed.reshape(-1)
    flat[5000] = 7.0  # past the first 16 KiB (4096 floats), before the first block after them
    assert flat.size > 100_000 and fingerprint(changed) == fingerprint(batch)


def test_small_arrays_and_object_arrays_are_hashed_whole() -> None:
    small = numpy.arange(1000)
    assert fingerprint(small) == _full(small)  # as before: logs of earlier versions still match
    objects = numpy.array([{"a": i} for i in range(100_000)], dtype=object)
    assert fingerprint(objects) == _full(objects)


def test_a_tensor_like_object_is_sampled_through_its_numpy_view(batch: Any) -> None:
    class Tensor:
        def __init__(self, data: Any) -> None:
            self._data = data
            self.shape, self.dtype, self.nbytes = data.shape, data.dtype, data.nbytes

        def numpy(self, force: bool = False) -> Any:
            return self._data

    assert fingerprint(Tensor(batch)) != fingerprint(Tensor(batch + 1))
    assert fingerprint(Tensor(batch)) == fingerprint(Tensor(batch.copy()))


def test_large_byte_buffers_are_sampled() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    assert fingerprint(data) == fingerprint(bytes(data))
    assert fingerprint(data) != fingerprint(data[:-1] + b"\x00")
    assert fingerprint(bytearray(data)) == fingerprint(bytearray(data))
    assert fingerprint(bytearray(data)) != fingerprint(data)  # the type counts
