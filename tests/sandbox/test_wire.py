import io
import math

import numpy as np
import pytest
import torch

from autograder.sandbox import wire


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.int64, torch.uint8, torch.bool, torch.complex64])
def test_tensors_round_trip_bit_exactly(dtype):
    tensor = (torch.randn(3, 4, 5) * 10).to(dtype)
    back = wire.decode(*wire.encode({"t": tensor}))["t"]
    assert back.dtype == dtype and back.shape == tensor.shape
    assert torch.equal(back.view(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def test_nested_plain_data_and_special_floats_round_trip():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": [torch.zeros(0, 3), np.arange(4)]},
             "nan": math.nan, "inf": -math.inf, "tuple": (1, 2)}
    back = wire.decode(*wire.encode(value))
    assert back["a"] == [1, 2.5, "x", None, True]
    assert back["b"]["c"][0].shape == (0, 3)
    assert torch.equal(back["b"]["c"][1], torch.arange(4))
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["tuple"] == [1, 2]  # tuples travel as lists


def test_non_tensor_views_and_grad_tensors_are_sent_as_their_values():
    base = torch.arange(12.0, requires_grad=True)
    view = base.view(3, 4).t()
    back = wire.decode(*wire.encode(view))
    assert torch.equal(back, view.detach())


def test_arbitrary_objects_become_opaque_descriptions():
    class Weird:
        def __repr__(self):
            raise RuntimeError("no")

    back = wire.decode(*wire.encode([Weird(), {1: 2}]))
    assert isinstance(back[0], wire.Opaque) and back[0].type_name.endswith("Weird")
    assert isinstance(back[1], wire.Opaque)  # non-string keys are not plain data
    assert "object of type" in wire.describe(back[0])


def test_frames_read_back_from_a_stream_and_end_cleanly():
    stream = io.BytesIO(wire.pack_frame({"x": torch.ones(2)}) + wire.pack_frame([1]))
    assert torch.equal(wire.read_frame(stream, 10**6)["x"], torch.ones(2))
    assert wire.read_frame(stream, 10**6) == [1]
    assert wire.read_frame(stream, 10**6) is None


def test_truncated_and_oversized_frames_are_rejected():
    frame = wire.pack_frame({"x": torch.ones(100)})
    with pytest.raises(wire.WireError, match="ended"):
        wire.read_frame(io.BytesIO(frame[:-10]), 10**6)
    with pytest.raises(wire.WireError, match="exceeds the cap"):
        wire.read_frame(io.BytesIO(frame), 100)


def test_tensor_table_that_lies_about_its_size_is_rejected():
    doc, blob = wire.encode(torch.ones(4))
    forged = doc.replace(b'"shape": [4]', b'"shape": [400]')
    with pytest.raises(wire.WireError, match="do not match"):
        wire.decode(forged, blob)


def test_pickle_payloads_are_not_executed():
    import pickle
    payload = pickle.dumps({"x": 1})
    with pytest.raises(wire.WireError):
        wire.decode(payload, b"")
