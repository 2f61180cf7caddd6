import pytest
import torch

from autograder.sandbox.wire import Opaque
from autograder.toolkit.verdict import (
    Mismatch,
    require_close,
    require_finite,
    require_tensor,
    unpack,
    verdict_from_error,
)


def test_require_close_names_the_worst_index_and_error():
    expected = torch.zeros(2, 3)
    got = expected.clone()
    got[1, 2] = 0.5
    with pytest.raises(Mismatch) as failure:
        require_close(got, expected, "output", atol=1e-5, rtol=1e-4)
    assert "max abs error 0.5" in failure.value.message and "(1, 2)" in failure.value.message
    require_close(expected + 1e-7, expected, "output", atol=1e-5, rtol=1e-4)


def test_shape_dtype_type_and_nan_problems_are_named():
    with pytest.raises(Mismatch, match="wrong shape"):
        require_close(torch.zeros(3, 2), torch.zeros(2, 3), "weights", atol=1, rtol=0)
    with pytest.raises(Mismatch, match="wrong dtype"):
        require_tensor(torch.zeros(1), "x", dtype=torch.float64)
    with pytest.raises(Mismatch, match="should be a torch.Tensor"):
        require_tensor(Opaque("MyThing", "..."), "x")
    with pytest.raises(Mismatch, match="NaN or Inf"):
        require_finite(torch.tensor([1.0, float("nan")]), "x")
    with pytest.raises(Mismatch, match="tuple of 2"):
        unpack(torch.zeros(2), 2, "f()")


def test_exception_messages_point_at_the_students_line():
    error = {"type": "RuntimeError", "message": "size mismatch", "hint": None,
             "where": {"line": 12, "function": "f", "code": "Q @ K"}, "traceback": "tb"}
    verdict = verdict_from_error(error)
    assert not verdict.passed
    assert verdict.message == "your code raised RuntimeError: size mismatch at line 12 in `f`: `Q @ K`"
    assert verdict.details == "tb"
