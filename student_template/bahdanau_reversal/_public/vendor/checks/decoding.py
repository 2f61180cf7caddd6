"""The `greedy_stops_at_eos` check: predict_with_attention runs on a grader-made model (a
scripted encoder and decoder whose next word depends only on the word fed in), so the right ids
are known: they follow the argmax chain, end right after <EOS> (or after max_len steps when it
never comes), and the weights are the decoder's, one row per step.
"""

from __future__ import annotations

import torch
from torch import nn

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import EOS, PAD, SOS, id_list

# ---- greedy decoding with a grader-made model --------------------------------------------

GREEDY_WORDS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"]  # ids 4..11
GREEDY_VOCAB = 4 + len(GREEDY_WORDS)
STOPPING = {SOS: 7, 7: 5, 5: 10, 10: EOS, EOS: 9}  # <SOS> -> cat, bee, gnu, <EOS> (then fox, if one went on)
ENDLESS = {SOS: 4, 4: 6, 6: 8, 8: 4}  # <SOS> -> ant, cat, eel, ant, ... never <EOS>
GREEDY_SOURCE = [6, 9, 4, 11, EOS]
GREEDY_CASES = [("stopping", None), ("endless", 7), ("endless", None)]  # (chain, max_len or None for the default)


def chain_table(chain: dict[int, int], generator) -> torch.Tensor:
    """(V, V) logits: row x peaks at chain[x] (other rows at x + 1, never <EOS> unless chained)."""
    table = torch.rand(GREEDY_VOCAB, GREEDY_VOCAB, generator=generator)
    for x in range(GREEDY_VOCAB):
        table[x, chain.get(x, 4 + (x + 1) % len(GREEDY_WORDS))] += 5.0
    return table


class ScriptedEncoder(nn.Module):
    """The grader's encoder: outputs (B, S, H) of ones and a zero hidden state (1, B, H)."""

    def __init__(self, hidden_dim: int = 4):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, src):
        B, S = src.shape
        outputs = self.scale * torch.ones(B, S, self.hidden_dim, device=src.device)
        return outputs, torch.zeros(1, B, self.hidden_dim, device=src.device)


class ScriptedDecoder(nn.Module):
    """The grader's decoder: the logits after word x are table[x] and the weights
    softmax(attention_table[x, :S]), whatever the hidden state; hidden is passed through."""

    def __init__(self, table: torch.Tensor, attention_table: torch.Tensor):
        super().__init__()
        self.vocab_size = table.shape[0]
        self.register_buffer("table", table.clone())
        self.register_buffer("attention_table", attention_table.clone())
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, hidden, encoder_outputs, mask=None):
        x = x.reshape(-1).long()
        weights = torch.softmax(self.attention_table[x, :encoder_outputs.shape[1]], dim=-1)
        return self.table[x] * self.scale, hidden, weights


class ScriptedSeq2Seq(nn.Module):
    """Seq2SeqWithAttention's interface around the scripted encoder and decoder."""

    def __init__(self, encoder: ScriptedEncoder, decoder: ScriptedDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, src, tgt, teacher_forcing_ratio=0.5):
        import random

        encoder_outputs, hidden = self.encoder(src)
        B, T = tgt.shape
        outputs = torch.zeros(B, T, self.decoder.vocab_size, device=src.device)
        x, attentions = tgt[:, :1], []
        for t in range(1, T):
            logits, hidden, weights = self.decoder(x, hidden, encoder_outputs, src == PAD)
            outputs[:, t] = logits
            attentions.append(weights)
            x = tgt[:, t:t + 1] if random.random() < teacher_forcing_ratio else logits.argmax(-1, keepdim=True)
        return outputs, attentions


def expected_decoding(table: torch.Tensor, attention_table: torch.Tensor, max_len: int, S: int):
    """(ids, weights (len(ids), S)) of greedy decoding of the scripted model (grading side)."""
    ids, rows, x = [], [], SOS
    for _ in range(max_len):
        rows.append(torch.softmax(attention_table[x, :S], dim=-1))
        x = int(table[x].argmax())
        ids.append(x)
        if x == EOS:
            break
    return ids, torch.stack(rows)


class GreedyStopsAtEos(Check):
    """predict_with_attention on a grader-made model (an nn.Module with `encoder` and `decoder`
    and Seq2SeqWithAttention's forward) whose next word depends only on the word fed in: the ids
    follow the argmax chain, end with <EOS> right after it is produced (or after max_len steps
    when it never comes, max_len 20 by default), and the weights are one row (S,) per step."""

    name = "greedy_stops_at_eos"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"tables": {"stopping": chain_table(STOPPING, generator), "endless": chain_table(ENDLESS, generator)},
                "attention_table": 2 * torch.randn(GREEDY_VOCAB, 8, generator=generator),
                "source": torch.tensor(GREEDY_SOURCE), "cases": [list(case) for case in GREEDY_CASES]}

    @staticmethod
    def probe(student, inputs, device):
        def vocabulary():
            vocab = student.Vocabulary()
            vocab.add_sentence(list(GREEDY_WORDS))
            return vocab

        made = student.call(vocabulary)
        if not made["ok"]:
            return {"vocabulary": made}
        runs = []
        for chain, max_len in inputs["cases"]:
            model = ScriptedSeq2Seq(ScriptedEncoder(), ScriptedDecoder(inputs["tables"][chain],
                                                                       inputs["attention_table"])).to(device)
            options = {} if max_len is None else {"max_len": max_len}
            record = student.attempt("predict_with_attention", model, inputs["source"].clone(), made["value"], **options)
            if record["ok"]:
                value = record["value"]
                if isinstance(value, (tuple, list)) and len(value) == 2:
                    weights = value[1]
                    if type(weights).__module__ == "numpy":
                        weights = torch.as_tensor(weights)
                    record = {"ok": True, "value": {"ids": id_list(value[0]), "weights": weights}}
                else:
                    record = {"ok": True, "value": {"returned": describe(value)}}
            runs.append(record)
        return {"vocabulary": {"ok": True, "value": None}, "runs": runs}

    def verdict(self, ctx, inputs, got, expected):
        value_of(got["vocabulary"], f"Vocabulary() then add_sentence({GREEDY_WORDS}) (predict_with_attention's vocab)")
        source = inputs["source"]
        S = len(source)
        atol = ctx.threshold("weights_atol")
        shown = []
        for (chain, max_len), record in zip(inputs["cases"], got["runs"], strict=True):
            limit = 20 if max_len is None else max_len
            call = (f"predict_with_attention(model, src {GREEDY_SOURCE}, vocab"
                    f"{'' if max_len is None else f', max_len={max_len}'})")
            what = f"{call} on a grader-made model whose greedy path is {'cat, bee, gnu, <EOS>' if chain == 'stopping' else 'ant, cat, eel, ant, ... (never <EOS>)'}"
            value = value_of(record, what)
            if "returned" in value:
                raise Mismatch(f"{what} should return a pair (ids, weights)", expected="(ids, weights)",
                               got=value["returned"])
            ids = value["ids"]
            right, right_weights = expected_decoding(inputs["tables"][chain], inputs["attention_table"], limit, S)
            if not isinstance(ids, list):
                raise Mismatch(f"{what}: ids should be a list of ints (or a 1-D tensor of ids)",
                               expected=str(right), got=describe(ids))
            if ids != right:
                raise Mismatch(f"{what}: {self.hint(ids, right, limit)}", expected=str(right), got=str(ids)[:200])
            weights = value["weights"]
            require_tensor(weights, f"{what}: weights (one row per produced id, S = {S} columns)", shape=(len(right), S))
            if not within_tolerance(weights, right_weights, atol, 0.0):
                raise Mismatch(f"{what}: row t of the weights should be the attention weights the decoder returned at "
                               "step t", expected="the decoder's weights, in order",
                               got=f"max abs error {max_abs_error(weights, right_weights):.3g}")
            shown.append(f"{len(ids)} ids" + (" ending with <EOS>" if ids and ids[-1] == EOS else f" (max_len {limit})"))
        return Verdict.ok(f"{len(shown)} cases: {', '.join(shown)}; each id is the argmax after the previous one, and "
                          "one weight row per step")

    @staticmethod
    def hint(ids: list[int], right: list[int], limit: int) -> str:
        if ids[:1] == [SOS] and ids[1:] == right[:len(ids) - 1]:
            return "ids should hold the produced words only, not the <SOS> fed in first"
        if right[-1] == EOS and ids[:len(right)] == right and len(ids) > len(right):
            return ("decoding went on after <EOS> was produced: stop right after appending <EOS>, which is the last "
                    "element of ids")
        if right[-1] == EOS and ids == right[:-1]:
            return "<EOS> should be the last element of ids: append it, then stop"
        if right[-1] != EOS and len(ids) != limit and ids == right[:len(ids)]:
            return f"without <EOS> decoding stops after max_len = {limit} steps"
        step = next((i for i, (a, b) in enumerate(zip(ids, right, strict=False)) if a != b), min(len(ids), len(right)))
        return (f"id {step} should be the argmax of the logits after feeding back id {step - 1} "
                "(greedy: start from <SOS>, feed each argmax back)" if step else
                "the first id should be the argmax after feeding <SOS> (vocab.word2idx['<SOS>'] = 1)")
