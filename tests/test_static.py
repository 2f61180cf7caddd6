from autograder.static import analyse

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


def test_missing_names_and_disallowed_imports():
    source = "import torch\nimport scipy.special\nfrom sklearn import metrics\ndef scaled_dot_product_attention(q):\n    pass\n"
    result = run(source)
    assert result.missing == ["softmax_with_and_without_scaling"]
    assert result.disallowed_imports == [("scipy", 2), ("sklearn", 3)]


def test_standard_library_and_guarded_optional_imports_are_fine():
    source = ("import math, json, collections\n"
              "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n"
              "def scaled_dot_product_attention(q):\n    import os\n    return q\n"
              "if __name__ == '__main__':\n    import scipy\n")
    assert run(source).disallowed_imports == []


def test_syntax_error_is_located():
    result = run("def scaled_dot_product_attention(q:\n    return q\n")
    assert result.syntax_error["line"] == 1
    assert result.missing == list(REQUIRED)
