"""Checks of the whole `MiniTransformerEncoder`.

``gradients_flow`` checks that the layers are registered sub-modules and that every parameter
gets a finite, non-zero gradient; ``encoder_outputs`` checks the output and per-layer weight
shapes and that keys where tokens == pad_idx get weight exactly 0 (with pad_idx 0 and 3).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import Mismatch, require_finite, require_tensor, unpack, value_of

from .common import randn, random_tokens, shape_text


class GradientsFlow(Check):
    name = "gradients_flow"
    needs_reference = False
    CONFIG = (25, 16, 4, 32, 2, 12, 0)  # vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"tokens": random_tokens(generator, [8, 5, 3], 8, 1, 25, 0),
                "grad_output": randn(generator, 3, 8, 16)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_module(student, device, "MiniTransformerEncoder", *GradientsFlow.CONFIG).train()
            layers = sum(isinstance(module, student.EncoderLayer) for module in model.modules())
            out, _ = model(inputs["tokens"])
            (out * inputs["grad_output"]).sum().backward()
            grads = []
            for name, parameter in model.named_parameters():
                if not parameter.requires_grad:
                    continue
                grad = parameter.grad
                grads.append([name, list(parameter.shape), "none" if grad is None else
                              "non-finite" if not torch.isfinite(grad).all() else
                              "zero" if not grad.any() else "ok"])
            return {"layers": layers, "grads": grads}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        vocab, d_model, heads, d_ff, num_layers, max_len, pad = self.CONFIG
        label = (f"MiniTransformerEncoder({vocab}, {d_model}, {heads}, {d_ff}, {num_layers}, {max_len}, "
                 f"pad_idx={pad})")
        value = value_of(got, f"{label}, loss = (output * g).sum()")
        if value["layers"] != num_layers:
            raise Mismatch(f"{label}: the model should hold its {num_layers} EncoderLayers as registered "
                           "sub-modules (an nn.ModuleList, not a Python list), or their parameters are never "
                           "trained or moved to the GPU",
                           expected=f"{num_layers} EncoderLayer modules in model.modules()",
                           got=f"{value['layers']}")
        grads = value["grads"]
        if not grads:
            raise Mismatch(f"{label} has no trainable parameters", expected="embedding and layer parameters",
                           got="model.parameters() is empty")
        bad = [f"{name} {tuple(shape)}: {status}" for name, shape, status in grads if status != "ok"]
        if bad:
            raise Mismatch(f"{label}: after loss.backward() some parameters have no gradient, a zero or a "
                           f"non-finite one: {'; '.join(bad[:6])}{' ...' if len(bad) > 6 else ''}. Is something "
                           "detached (.detach(), .data, torch.no_grad), created but never used, or not in "
                           "the forward pass?", expected="a finite, non-zero gradient for every parameter",
                           got=f"{len(bad)} of {len(grads)} parameters without one")
        return Verdict.ok(f"all {len(grads)} parameters of {label} get a finite, non-zero gradient")


class EncoderOutputs(Check):
    name = "encoder_outputs"
    needs_reference = False
    CONFIGS = [  # (vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx), lengths, L
        ((30, 24, 3, 48, 3, 20, 0), [8, 5, 2], 8),
        ((12, 16, 2, 32, 1, 10, 3), [6, 4], 6),
    ]

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for config, lengths, length in self.CONFIGS:
            vocab, pad = config[0], config[-1]
            tokens = random_tokens(generator, lengths, length, 0 if pad else 1, vocab, pad)
            if pad:
                tokens[0, 1] = 0  # with pad_idx = 3, id 0 is an ordinary token
            cases.append({"config": list(config), "tokens": tokens})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            model = build_module(student, device, "MiniTransformerEncoder", *case["config"]).eval()
            with torch.no_grad():
                return model(case["tokens"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        for case, record in zip(inputs["cases"], got, strict=True):
            vocab, d_model, heads, d_ff, num_layers, max_len, pad = case["config"]
            tokens = case["tokens"]
            batch, length = tokens.shape
            label = (f"MiniTransformerEncoder({vocab}, {d_model}, {heads}, {d_ff}, {num_layers}, {max_len}, "
                     f"pad_idx={pad}) on tokens {shape_text(tokens)}")
            out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
            require_tensor(out, f"output ({label})", shape=(batch, length, d_model))
            require_finite(out, f"output ({label})")
            if not isinstance(weights, list) or len(weights) != num_layers:
                raise Mismatch(f"{label}: the second result should be a list with one weight tensor per layer",
                               expected=f"a list of {num_layers}",
                               got=f"a list of {len(weights)}" if isinstance(weights, list) else type(weights).__name__)
            padded = tokens == pad
            for index, w in enumerate(weights):
                what = f"layer {index}'s weights ({label})"
                require_tensor(w, what, shape=(batch, heads, length, length))
                require_finite(w, what)
                leaked = w.masked_select(padded[:, None, None, :].expand_as(w))
                if (leaked != 0).any():
                    zero_hint = ("; you seem to mask the tokens equal to 0: use the model's pad_idx"
                                 if pad != 0 and not w.masked_select((tokens == 0)[:, None, None, :].expand_as(w)).any()
                                 else "")
                    raise Mismatch(f"{what}: keys where tokens == pad_idx ({pad}) should get weight exactly 0; "
                                   f"derive key_padding_mask = (tokens == pad_idx) and pass it to every "
                                   f"layer{zero_hint}", expected="0 on every padded key",
                                   got=f"{int((leaked != 0).sum())} non-zero, largest {leaked.abs().max().item():.3g}")
                sums = w.to(torch.float64).sum(-1)
                if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
                    raise Mismatch(f"{what}: every row should sum to 1 over the keys", expected="row sums 1",
                                   got=f"row sums from {sums.min().item():.4g} to {sums.max().item():.4g}")
        return Verdict.ok("outputs (B, L, d_model) and one (B, num_heads, L, L) weight tensor per layer; "
                          "keys where tokens == pad_idx get weight 0 (pad_idx 0 and 3)")
