from autograder.submission.static import analyse

FORBIDDEN = ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention")
REQUIRED = ("scaled_dot_product_attention", "softmax_with_and_without_scaling")


def run(source, scope=("scaled_dot_product_attention",), allowed=("torch", "numpy")):
    return analyse(source, "attention.py", required=REQUIRED, allowed_imports=allowed,
                   forbidden=FORBIDDEN, scope=scope)


def test_forbidden_call_is_found_through_any_import_alias():
    for imports, call in [("import torch.nn.functional as F", "F.scaled_dot_product_attention(q, q, q)"),
                          ("import torch", "torch.nn.functional.scaled_dot_product_attention(q, q, q)"),
                          ("from torch.nn.functional import scaled_dot_product_attention as sdpa", "sdpa(q, q, q)"),
                          ("from torch import nn", "nn.MultiheadAttention(4, 2)"),
                          ("from torch.nn import *", "MultiheadAttention(4, 2)")]:
        source = f"{imports}\ndef scaled_dot_product_attention(q):\n    return {call}\n"
        uses = run(source).forbidden
        assert len(uses) == 1, (imports, uses)
        assert uses[0].line == 3 and uses[0].within == "scaled_dot_product_attention"


def test_helpers_reached_from_the_scope_and_module_aliases_count():
    source = ("import torch.nn.functional as F\nsdpa = F.scaled_dot_product_attention\n"
              "def _helper(q):\n    return sdpa(q, q, q)\n"
              "def scaled_dot_product_attention(q):\n    return _helper(q)\n")
    (use,) = run(source).forbidden
    assert (use.line, use.within, use.reached_from) == (4, "_helper", "scaled_dot_product_attention")
    assert "called from `scaled_dot_product_attention`" in use.describe()


def test_comments_strings_and_code_outside_the_scope_do_not_count():
    source = ("import torch.nn.functional as F\n"
              "def scaled_dot_product_attention(q):\n"
              "    # F.scaled_dot_product_attention would be easier\n"
              "    note = 'F.scaled_dot_product_attention'\n    return q\n"
              "def check_against_torch(q):\n    return F.scaled_dot_product_attention(q, q, q)\n")
    assert run(source).forbidden == []
    assert len(run(source, scope=()).forbidden) == 1  # an empty scope means the whole file


def test_missing_names_and_modules_that_get_a_placeholder():
    source = ("import torch\nimport scipy.special\nfrom sklearn import metrics\n"
              "def scaled_dot_product_attention(q):\n    import sklearn.metrics\n    import no_such_module_here\n")
    result = run(source)
    assert result.missing == ["softmax_with_and_without_scaling"]
    assert result.placeholders == {"scipy": 2, "sklearn": 3, "no_such_module_here": 6} and result.stand_ins == {}


def test_an_allowed_module_that_is_not_installed_gets_a_placeholder():
    result = run("import torch\nimport not_installed_anywhere as nia\n", allowed=("torch", "not_installed_anywhere"))
    assert result.placeholders == {"not_installed_anywhere": 2}


def test_logging_and_display_tools_get_stand_ins_wherever_they_are_imported():
    source = ("from google.colab import drive\nimport wandb\nfrom torch.utils.tensorboard import SummaryWriter\n"
              "from torch.utils import tensorboard\nfrom IPython.display import clear_output\n"
              "try:\n    import tensorboardX\nexcept ImportError:\n    pass\n"
              "def scaled_dot_product_attention(q):\n    from tqdm.notebook import tqdm\n    return q\n")
    result = run(source)
    assert result.stand_ins == {"google.colab": 1, "wandb": 2, "torch.utils.tensorboard": 3, "IPython": 5,
                                "tensorboardX": 7, "tqdm.notebook": 11}
    assert result.placeholders == {}


def test_standard_library_and_guarded_optional_imports_keep_their_real_outcome():
    source = ("import math, json, collections\n"
              "try:\n    import sklearn\nexcept ImportError:\n    sklearn = None\n"
              "def scaled_dot_product_attention(q):\n    import os\n    return q\n"
              "if __name__ == '__main__':\n    import scipy\n    import wandb\n")
    result = run(source)
    assert result.placeholders == {} and result.stand_ins == {}


def test_syntax_error_is_located():
    result = run("def scaled_dot_product_attention(q:\n    return q\n")
    assert result.syntax_error["line"] == 1
    assert result.missing == list(REQUIRED)
