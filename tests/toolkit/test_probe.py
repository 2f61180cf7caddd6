"""autograder.toolkit.probe helpers that turn what student code returned into plain data."""

import numpy as np
import torch

from autograder.toolkit.probe import plain_history, plain_number


def test_scalars_become_python_numbers_and_the_rest_is_left_to_describe():
    assert plain_number(torch.tensor(2.5)) == 2.5 and isinstance(plain_number(torch.tensor([3])), int)
    assert plain_number(np.float32(1.5)) == 1.5 and type(plain_number(np.float32(1.5))) is float
    tensor = torch.ones(2)
    assert plain_number(tensor) is tensor and plain_number("nan") == "nan"


def test_a_history_keeps_its_string_keys_with_plain_numbers():
    history = {"train_loss": [torch.tensor(1.0), np.float64(0.5), 0.25], "note": "x", 3: [1]}
    assert plain_history(history) == {"train_loss": [1.0, 0.5, 0.25], "note": "x"}
    assert plain_history([1, 2]) == [1, 2]
