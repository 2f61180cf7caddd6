"""Helpers shared by the visible checks of `transformer_encoder`.

The names the handout fixes (the attention class, its four projections, the encoder layer's
sub-modules); on the probe side, reaching a named sub-module with a clear ContractError and
copying the grader's nn.MultiheadAttention-layout weights into the student's projections; on
the grader side, seeded float32 inputs, padding masks, padded token batches and the grader's
attention weights. No checks live here.
"""

from __future__ import annotations

import torch

from autograder.toolkit.probe import ContractError

MHA = "MultiHeadSelfAttention"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
LAYER_PARTS = ("self_attn", "feed_forward", "norm1", "norm2")


# ---- probe side: calling the student's code --------------------------------------------

def part(module, name: str, owner: str, contract: str):
    """``module.name``, or a ContractError naming the attribute the handout fixes."""
    found = getattr(module, name, None)
    if found is None:
        children = ", ".join(child for child, _ in module.named_children()) or "none"
        raise ContractError(f"{owner} has no attribute `{name}`; the handout fixes {contract}, and the "
                            "grader uses these names", expected=f"attribute `{name}`",
                            got=f"sub-modules: {children}")
    return found


def projection(mha, name: str, d_model: int):
    """One of q_proj, k_proj, v_proj, out_proj with a (d, d) weight and a (d,) bias."""
    contract = "four nn.Linear(d_model, d_model) layers q_proj, k_proj, v_proj, out_proj (bias on)"
    layer = part(mha, name, f"{MHA}({d_model}, ...)", contract)
    weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (d_model, d_model):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
        raise ContractError(f"`{name}` should be nn.Linear(d_model, d_model) with d_model = {d_model}",
                            expected=f"{name}.weight of shape {(d_model, d_model)}", got=f"{name}.weight {shape}")
    if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (d_model,):
        raise ContractError(f"`{name}` has no bias; create it with nn.Linear(d_model, d_model), whose "
                            "bias is on by default", expected=f"{name}.bias of shape ({d_model},)",
                            got="no bias" if bias is None else f"bias {tuple(bias.shape)}")
    return layer


def load_mha_weights(mha, weights: dict, d_model: int) -> None:
    """Copy the grader's nn.MultiheadAttention-layout weights into the four projections."""
    with torch.no_grad():
        for index, name in enumerate(PROJECTIONS[:3]):
            layer = projection(mha, name, d_model)
            rows = slice(index * d_model, (index + 1) * d_model)
            layer.weight.copy_(weights["in_proj_weight"][rows])
            layer.bias.copy_(weights["in_proj_bias"][rows])
        layer = projection(mha, "out_proj", d_model)
        layer.weight.copy_(weights["out_proj_weight"])
        layer.bias.copy_(weights["out_proj_bias"])


# ---- grader side: inputs and verdict helpers -------------------------------------------

def randn(generator, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(torch.float32)


def padding_mask(lengths: list[int], length: int) -> torch.Tensor:
    """(B, L) bool, True at the padded positions of sentences with the given lengths."""
    return torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None]


def random_tokens(generator, lengths: list[int], length: int, low: int, high: int, pad: int) -> torch.Tensor:
    """(B, L) ids drawn from [low, high) (never ``pad``), padded with ``pad`` after each length."""
    tokens = torch.randint(low, high, (len(lengths), length), generator=generator)
    tokens = torch.where(tokens == pad, torch.full_like(tokens, high - 1 if pad != high - 1 else low), tokens)
    return tokens.masked_fill(padding_mask(lengths, length), pad)


def mha_weights(generator, d_model: int) -> dict:
    """Weights in torch.nn.MultiheadAttention's layout, scaled so that the scores vary by ~1."""
    scale = d_model ** -0.5
    return {"in_proj_weight": randn(generator, 3 * d_model, d_model) * scale,
            "in_proj_bias": randn(generator, 3 * d_model) * 0.3,
            "out_proj_weight": randn(generator, d_model, d_model) * scale,
            "out_proj_bias": randn(generator, d_model) * 0.3}


def shape_text(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))
