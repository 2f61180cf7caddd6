"""Visible checks of the `char_rnn` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers: the verdicts decide from
properties (round trips, windows, shapes, continuation of the hidden state), from losses the
grading process computes itself from the logits that come back, and, for ``sample``, from a
goodness-of-fit test against a grader-made model whose next-character distribution is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.corpus import split_ids
from autograder.toolkit.figures import figure_data, png_bytes, require_curves
from autograder.toolkit.probe import ContractError, build_module, plain_history
from autograder.toolkit.sampling import (
    KnownLogitsModel,
    random_table,
    require_sampled_from,
    temperature_probs,
    transition_counts,
)
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    unpack,
    value_of,
)

CELLS = ("rnn", "gru", "lstm")


def forward_pair(output, call: str):
    """(logits, hidden) from a forward call, or a ContractError (probe side)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise ContractError(f"{call} should return a pair (logits, hidden)", expected="(logits, hidden)",
                            got=describe(output))
    return output


def exact_rnn():
    """A context in which PyTorch runs recurrent layers without cuDNN: on a GPU cuDNN may use
    TF32 (about 1e-3 relative error), too coarse for comparing two ways of computing the same
    logits. The flags are restored afterwards; on a CPU nothing changes (probe side)."""
    return torch.backends.cudnn.flags(enabled=False)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats, computed here in float64 (grading side)."""
    log_probs = torch.log_softmax(logits.to(torch.float64), dim=-1)
    return float(-log_probs.gather(-1, targets.unsqueeze(-1)).mean())


# ---- vocabulary --------------------------------------------------------------------------

VOCAB_TEXT = ("Call me Ishmael. Some years ago - never mind how long precisely -\n"
              "having little or no money in my purse,\tI thought I would sail about... "
              "Cafe, naive; 42 (or 7)? Yes! 'Q' & \"z\" ~ #1: ok.")


class Vocabulary(Check):
    name = "vocabulary"
    needs_reference = False

    def inputs(self, ctx):
        return {"text": VOCAB_TEXT}

    @staticmethod
    def probe(student, inputs, device):
        text = inputs["text"]
        built = student.attempt("build_vocab", text)
        if not built["ok"]:
            return {"build": built}
        pair = built["value"]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return {"build": built, "shape": describe(pair)}
        stoi, itos = pair
        result = {"build": {"ok": True, "value": None}, "stoi_type": type(stoi).__name__,
                  "itos_type": type(itos).__name__}
        if not isinstance(stoi, Mapping):
            return result
        result["stoi"] = [[str(key), value if isinstance(value, int) else describe(value)]
                          for key, value in stoi.items()]
        chars = student.call(lambda: [itos[index] for index in range(len(stoi))])
        result["itos"] = chars if not chars["ok"] else {"ok": True, "value": [str(c) for c in chars["value"]]}
        result["itos_len"] = len(itos) if hasattr(itos, "__len__") else None
        result["encode"] = student.attempt("encode", text, stoi)
        if result["encode"]["ok"] and isinstance(result["encode"]["value"], torch.Tensor):
            result["decode"] = student.attempt("decode", result["encode"]["value"], itos)
        return result

    def verdict(self, ctx, inputs, got, expected):
        text = inputs["text"]
        value_of(got["build"], "build_vocab(text)")
        if "shape" in got:
            raise Mismatch("build_vocab(text) should return a pair (stoi, itos)", expected="(stoi, itos)",
                           got=got["shape"])
        if "stoi" not in got:
            raise Mismatch("build_vocab(text): stoi should be a dict from character to id", expected="a dict",
                           got=f"an object of type {got['stoi_type']}")
        stoi = dict(got["stoi"])
        wanted = set(text)
        if set(stoi) != wanted:
            raise Mismatch("build_vocab(text): stoi should have one entry per distinct character of the text",
                           expected=f"{len(wanted)} characters",
                           got=f"{len(stoi)}; extra {sorted(set(stoi) - wanted)[:8]}, missing "
                               f"{sorted(wanted - set(stoi))[:8]}")
        V = len(wanted)
        if sorted(v if isinstance(v, int) else -1 for v in stoi.values()) != list(range(V)):
            raise Mismatch(f"build_vocab(text): the ids should be the ints 0 .. {V - 1}, each used once",
                           expected=f"0 .. {V - 1}", got=str(sorted(map(str, stoi.values())))[:120])
        chars = value_of(got["itos"], "itos[i] for i in range(len(stoi))")
        wrong = [char for char, index in stoi.items() if chars[index] != char]
        if wrong or got["itos_len"] != V:
            raise Mismatch("build_vocab(text): itos should be a list of the V characters with itos[stoi[c]] == c",
                           expected=f"a list of {V} characters, itos[stoi[c]] == c",
                           got=f"len(itos) = {got['itos_len']}" + (f"; itos[stoi[{wrong[0]!r}]] = "
                                                                   f"{chars[stoi[wrong[0]]]!r}" if wrong else ""))
        ids = require_tensor(value_of(got["encode"], "encode(text, stoi)"), "encode(text, stoi)")
        if ids.dtype != torch.int64:
            raise Mismatch("encode(text, stoi) should return int64 ids (a LongTensor), which nn.Embedding and "
                           "cross_entropy need", expected="torch.int64", got=str(ids.dtype))
        require_tensor(ids, "encode(text, stoi)", shape=(len(text),))
        right = torch.tensor([stoi[char] for char in text])
        if not torch.equal(ids, right):
            at = int((ids != right).nonzero()[0])
            raise Mismatch(f"encode(text, stoi): position {at} should be stoi[{text[at]!r}]",
                           expected=str(int(right[at])), got=str(int(ids[at])))
        decoded = value_of(got["decode"], "decode(encode(text, stoi), itos)")
        if decoded != text:
            at = next((i for i, (a, b) in enumerate(zip(decoded, text, strict=False)) if a != b),
                      min(len(decoded), len(text))) if isinstance(decoded, str) else 0
            raise Mismatch("decode(encode(text, stoi), itos) should give the text back, as one str",
                           expected=f"{text[max(at - 10, 0):at + 10]!r} around position {at}",
                           got=describe(decoded) if not isinstance(decoded, str) else
                           f"{decoded[max(at - 10, 0):at + 10]!r} (length {len(decoded)} instead of {len(text)})")
        return Verdict.ok(f"a {V}-character vocabulary with itos[stoi[c]] == c; encode gives {len(text)} int64 "
                          "ids and decode(encode(text)) is the text again")


# ---- make_examples ----------------------------------------------------------------------

class Examples(Check):
    """Every row of X followed by the last id of its row of Y is seq_len + 1 consecutive ids of
    the input, and Y is X moved on by one; any stride between rows is accepted (the spec's
    contract), so the rows are located, not compared with one layout."""

    name = "examples"
    needs_reference = False
    CASES = [(203, 8), (41, 5)]  # (number of ids, seq_len)

    def inputs(self, ctx):
        generator = ctx.generator()
        # ids drawn from 10000 values: every window of the sequence is unique, so each row can be located
        return {"cases": [{"ids": torch.randint(0, 10_000, (length,), generator=generator), "seq_len": seq_len}
                          for length, seq_len in self.CASES]}

    @staticmethod
    def probe(student, inputs, device):
        return [student.attempt("make_examples", case["ids"], case["seq_len"]) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rows = []
        for case, record in zip(inputs["cases"], got, strict=True):
            rows.append(self.judge_case(case["ids"], case["seq_len"], record))
        return Verdict.ok(f"make_examples gives {rows[0]} rows of 8 ids from 203 ids and {rows[1]} rows of 5 from 41: "
                          "each row a window of the ids, Y = X shifted by one")

    @staticmethod
    def judge_case(ids: torch.Tensor, seq_len: int, record: dict) -> int:
        call = f"make_examples(ids of length {len(ids)}, seq_len={seq_len})"
        X, Y = unpack(value_of(record, call), 2, call)
        X, Y = require_tensor(X, f"X from {call}"), require_tensor(Y, f"Y from {call}")
        if X.dim() != 2 or X.shape[1] != seq_len or X.shape[0] < 1:
            raise Mismatch(f"X from {call} should have shape (N, seq_len) with N >= 1", expected=f"(N, {seq_len})",
                           got=f"shape {tuple(X.shape)}")
        require_tensor(Y, f"Y from {call}", shape=tuple(X.shape))
        for tensor, what in ((X, "X"), (Y, "Y")):
            if tensor.dtype != torch.int64:
                raise Mismatch(f"{what} from {call} should hold int64 ids (for nn.Embedding and cross_entropy)",
                               expected="torch.int64", got=str(tensor.dtype))
        for row in range(len(X)):
            if not torch.equal(Y[row, :-1], X[row, 1:]):
                hint = ("Y equals X: the targets are not shifted" if torch.equal(Y[row], X[row]) else
                        "Y is shifted the wrong way (Y[t] should come after X[t], not before)"
                        if torch.equal(Y[row, 1:], X[row, :-1]) else "Y[:, t] should equal X[:, t + 1]")
                raise Mismatch(f"{call}: row {row}: Y should be X moved one character on ({hint})",
                               expected=f"Y[{row}, :-1] == X[{row}, 1:]",
                               got=f"X[{row}, :4] = {X[row, :4].tolist()}, Y[{row}, :4] = {Y[row, :4].tolist()}")
        windows = {tuple(ids[i:i + seq_len + 1].tolist()) for i in range(len(ids) - seq_len)}
        for row in range(len(X)):
            if tuple(X[row].tolist()) + (int(Y[row, -1]),) not in windows:
                raise Mismatch(f"{call}: row {row} of X followed by Y[{row}, -1] is not {seq_len + 1} consecutive ids "
                               "of the input", expected="ids[s : s + seq_len + 1] for some s",
                               got=f"X[{row}] = {X[row].tolist()[:6]}..., Y[{row}, -1] = {int(Y[row, -1])}")
        return len(X)


# ---- the model ---------------------------------------------------------------------------

def hidden_shapes(hidden) -> list | None:
    """The shapes in a hidden state: [shape] for a tensor, [shape, shape] for a pair (probe side)."""
    if isinstance(hidden, torch.Tensor):
        return [list(hidden.shape)]
    if isinstance(hidden, (tuple, list)) and all(isinstance(h, torch.Tensor) for h in hidden):
        return [list(h.shape) for h in hidden]
    return None


def is_zero(hidden) -> bool:
    parts = [hidden] if isinstance(hidden, torch.Tensor) else list(hidden)
    return all(bool((part == 0).all()) for part in parts)


class Shapes(Check):
    name = "shapes"
    needs_reference = False
    V, E, H = 13, 8, 16

    def inputs(self, ctx):
        return {"x": torch.randint(0, self.V, (3, 7), generator=ctx.generator()),
                "configs": [[cell, layers] for cell in CELLS for layers in (1, 2)]}

    @staticmethod
    def probe(student, inputs, device):
        x = inputs["x"]

        def run(cell, layers):
            model = build_module(student, device, "CharRNN", Shapes.V, Shapes.E, Shapes.H, num_layers=layers, cell=cell).eval()
            call = f"CharRNN(13, 8, 16, num_layers={layers}, cell={cell!r})"
            with torch.no_grad(), exact_rnn():
                logits, hidden = forward_pair(model(x), f"{call}.forward(x)")
                initial = model.init_hidden(x.shape[0])
                shapes = hidden_shapes(initial)
                again = student.call(lambda: forward_pair(model(x, initial), f"{call}.forward(x, init_hidden(3))")[0])
            return {"logits": logits, "hidden": hidden_shapes(hidden), "hidden_type": type(hidden).__name__,
                    "init": shapes, "init_type": type(initial).__name__,
                    "init_zero": is_zero(initial) if shapes else False, "again": again,
                    "parameters": sum(p.numel() for p in model.parameters())}

        return [student.call(run, cell, layers) for cell, layers in inputs["configs"]]

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        problems, counts = [], {}
        for (cell, layers), record in zip(inputs["configs"], got, strict=True):
            try:
                counts.setdefault(cell, value_of(record, "")["parameters"] if record["ok"] else None)
                self.judge_config(cell, layers, B, T, record)
            except Mismatch as failure:
                problems.append(failure)
        try:
            self.judge_cells(counts)
        except Mismatch as failure:
            problems.append(failure)
        total = len(inputs["configs"]) + 1
        if not problems:
            return Verdict.ok(f"logits (B, T, V) = {(B, T, self.V)}; hidden (num_layers, B, H) for rnn and gru and a "
                              "pair (h, c) for lstm, with 1 and 2 layers; init_hidden gives zeros of the same shapes; "
                              f"rnn < gru < lstm in parameters ({counts['rnn']}, {counts['gru']}, {counts['lstm']})")
        first = problems[0]
        return Verdict.partial(total - len(problems), total, f"{total - len(problems)} of {total} cases right; first "
                               f"problem: {first.message}", expected=first.expected, got=first.got)

    def judge_config(self, cell: str, layers: int, B: int, T: int, record: dict) -> None:
        call = f"CharRNN(13, 8, 16, num_layers={layers}, cell={cell!r})"
        value = value_of(record, call)
        require_finite(require_tensor(value["logits"], f"logits of {call}.forward(x of shape {(B, T)})",
                                      shape=(B, T, self.V)), f"logits of {call}")
        want = [[layers, B, self.H]] * (2 if cell == "lstm" else 1)
        shown = "a pair (h, c) of" if cell == "lstm" else "a tensor"
        for key, what in (("hidden", f"the hidden state returned by {call}.forward(x)"),
                          ("init", f"{call}.init_hidden({B})")):
            if value[key] != want:
                hint = (" (an LSTM's state is the pair (h, c))" if cell == "lstm" else
                        " (nn.RNN/nn.GRU return one tensor; is the cell argument used?)")
                raise Mismatch(f"{what} should be {shown} (num_layers, B, H) tensor{'s' if cell == 'lstm' else ''}"
                               f"{hint}", expected=" and ".join([str(tuple(want[0]))] * len(want)),
                               got=", ".join(str(tuple(s)) for s in value[key]) if value[key] else
                               f"an object of type {value[key + '_type']}")
        if not value["init_zero"]:
            raise Mismatch(f"{call}.init_hidden({B}) should be all zeros", expected="zeros", got="non-zero entries")
        again = value_of(value["again"], f"{call}.forward(x, init_hidden({B}))")
        change = max_abs_error(require_tensor(again, f"{call}.forward(x, init_hidden({B}))", shape=(B, T, self.V)),
                               value["logits"])
        if change > 1e-5:
            raise Mismatch(f"{call}: forward(x, init_hidden({B})) should equal forward(x) (hidden=None starts from "
                           "zeros)", expected="the same logits", got=f"max abs difference {change:.3g}")

    @staticmethod
    def judge_cells(counts: dict) -> None:
        if any(counts.get(cell) is None for cell in CELLS):
            failed = [cell for cell in CELLS if counts.get(cell) is None]
            raise Mismatch("the cell argument could not be compared: CharRNN failed to build for some cells",
                           expected="CharRNN builds with cell='rnn', 'gru' and 'lstm'", got=f"failed: {failed}")
        n = [counts[cell] for cell in CELLS]
        if not n[0] < n[1] < n[2]:
            raise Mismatch("CharRNN's cell argument does not seem to choose the recurrent layer: a GRU has 3 gates' "
                           "weights and an LSTM 4, so the parameter counts should grow rnn < gru < lstm",
                           expected="rnn < gru < lstm", got=f"rnn {n[0]}, gru {n[1]}, lstm {n[2]} parameters")


class InitialLoss(Check):
    """Random targets: a model that knows nothing predicts about 1/V for each character, so the
    loss is about ln V plus half the variance of its logits (under 0.03 with PyTorch's default init)."""

    name = "initial_loss"
    needs_reference = False
    V = 40

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"x": torch.randint(0, self.V, (4, 64), generator=generator),
                "y": torch.randint(0, self.V, (4, 64), generator=generator)}

    @staticmethod
    def probe(student, inputs, device):
        def run(cell):
            model = build_module(student, device, "CharRNN", InitialLoss.V, 32, 128, cell=cell).eval()
            with torch.no_grad():
                return forward_pair(model(inputs["x"]), f"CharRNN(40, 32, 128, cell={cell!r}).forward(x)")[0]
        return {cell: student.call(run, cell) for cell in CELLS}

    def verdict(self, ctx, inputs, got, expected):
        tolerance, ln_v = ctx.threshold("initial_loss_tol"), math.log(self.V)
        losses = {}
        for cell in CELLS:
            call = f"CharRNN(40, 32, 128, cell={cell!r}) freshly built, on x of shape (4, 64)"
            logits = require_tensor(value_of(got[cell], call), f"logits of {call}", shape=(4, 64, self.V))
            require_finite(logits, f"logits of {call}")
            losses[cell] = cross_entropy(logits, inputs["y"])
            if abs(losses[cell] - ln_v) > tolerance:
                spread = logits.to(torch.float64).std(-1).mean().item()
                raise Mismatch(f"{call}: the cross-entropy on random targets should be near ln V = {ln_v:.3f}, since "
                               "an untrained model has no reason to prefer any character. Yours is "
                               f"{losses[cell]:.3f}; its logits spread by {spread:.3g} on average per position "
                               "(use PyTorch's default initialisation, and return raw logits, not probabilities)",
                               expected=f"{ln_v:.3f} ± {tolerance:g}", got=f"{losses[cell]:.3f}")
        shown = ", ".join(f"{cell} {loss:.3f}" for cell, loss in losses.items())
        return Verdict.ok(f"initial loss on random targets {shown}; ln V = {ln_v:.3f} (tolerance {tolerance:g})")


class HiddenState(Check):
    name = "hidden_state"
    needs_reference = False
    V = 11

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"x1": torch.randint(0, self.V, (2, 6), generator=generator),
                "x2": torch.randint(0, self.V, (2, 5), generator=generator)}

    @staticmethod
    def probe(student, inputs, device):
        x1, x2 = inputs["x1"], inputs["x2"]

        def run(cell):
            model = build_module(student, device, "CharRNN", HiddenState.V, 8, 16, num_layers=2, cell=cell).eval()
            call = f"CharRNN(11, 8, 16, num_layers=2, cell={cell!r})"
            with torch.no_grad(), exact_rnn():
                _, hidden = forward_pair(model(x1), f"{call}.forward(x1)")
                continued = forward_pair(model(x2, hidden), f"{call}.forward(x2, hidden)")[0]
                fresh = forward_pair(model(x2), f"{call}.forward(x2)")[0]
                whole = forward_pair(model(torch.cat([x1, x2], dim=1)), f"{call}.forward(cat(x1, x2))")[0]
            return {"continued": continued, "fresh": fresh, "whole": whole}

        return {cell: student.call(run, cell) for cell in CELLS}

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol, change = ctx.threshold("hidden_atol"), ctx.threshold("hidden_rtol"), ctx.threshold("hidden_min_change")
        problems = []
        for cell in CELLS:
            call = f"CharRNN(11, 8, 16, num_layers=2, cell={cell!r}) in eval mode"
            try:
                value = value_of(got[cell], call)
                shape = (2, 5, self.V)
                continued = require_tensor(value["continued"], f"{call}: forward(x2, hidden)", shape=shape)
                fresh = require_tensor(value["fresh"], f"{call}: forward(x2)", shape=shape)
                whole = require_tensor(value["whole"], f"{call}: forward(cat(x1, x2))", shape=(2, 11, self.V))
                tail = whole[:, 6:]
                if max_abs_error(continued, fresh) <= change:
                    raise Mismatch(f"{call}: forward(x2, hidden) gives the same logits as forward(x2); forward must "
                                   "start from the hidden state it is given (pass it to the recurrent layer)",
                                   expected="logits that depend on the hidden passed in",
                                   got=f"max difference {max_abs_error(continued, fresh):.3g}")
                error = (continued.to(torch.float64) - tail.to(torch.float64)).abs()
                if (error > atol + rtol * tail.to(torch.float64).abs()).any():
                    raise Mismatch(f"{call}: with hidden from forward(x1), forward(x2, hidden) should equal the last 5 "
                                   "steps of forward(cat(x1, x2)): the hidden returned must be the state after the "
                                   "last character of x1, for every layer",
                                   expected=f"the same logits (tolerance {atol:g} + {rtol:g}·|expected|)",
                                   got=f"max abs difference {error.max().item():.3g}")
            except Mismatch as failure:
                problems.append(failure)
        if not problems:
            return Verdict.ok("for rnn, gru and lstm (2 layers): forward(x2, hidden of x1) equals the tail of "
                              "forward(cat(x1, x2)) and differs from forward(x2)")
        first, right = problems[0], len(CELLS) - len(problems)
        return Verdict.partial(right, len(CELLS), f"{right} of {len(CELLS)} cells right; first problem: {first.message}",
                               expected=first.expected, got=first.got)


# ---- train_model -------------------------------------------------------------------------

HISTORY_TEXT = ("the cat sat on the mat. the dog sat on the log. the cat saw the dog and the dog saw "
                "the cat. ") * 24




def history_lists(history, epochs: int, call: str) -> dict[str, list[float]]:
    """The two loss lists of a train_model result, checked: a dict with train_loss and
    val_loss, one finite number per epoch (grading side)."""
    if not isinstance(history, dict):
        raise Mismatch(f"{call} should return a dict {{'train_loss': [...], 'val_loss': [...]}}",
                       expected="a dict", got=describe(history))
    lists = {}
    for key in ("train_loss", "val_loss"):
        values = history.get(key)
        if not isinstance(values, list) or len(values) != epochs:
            raise Mismatch(f"{call}: history[{key!r}] should be a list with one loss per epoch",
                           expected=f"a list of {epochs} floats",
                           got="no such key" if key not in history else describe(values))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise Mismatch(f"{call}: history[{key!r}] should hold finite Python floats (use loss.item())",
                           expected="finite floats", got=", ".join(describe(v) for v in values)[:200])
        lists[key] = [float(v) for v in values]
    return lists


class TrainHistory(Check):
    name = "train_history"
    needs_reference = False
    SETTINGS = {"epochs": 3, "seq_len": 16, "batch_size": 8, "lr": 0.01}

    def inputs(self, ctx):
        train_ids, val_ids, vocab_size = split_ids(HISTORY_TEXT)
        return {"train_ids": train_ids, "val_ids": val_ids, "vocab_size": vocab_size, "settings": self.SETTINGS}

    @staticmethod
    def probe(student, inputs, device):
        model = build_module(student, device, "CharRNN", inputs["vocab_size"], 16, 32)
        before = [p.detach().clone() for p in model.parameters()]
        history = student.train_model(model, inputs["train_ids"], inputs["val_ids"], **inputs["settings"], clip=1.0)
        changed = any(not torch.equal(old, new.detach()) for old, new in zip(before, model.parameters(), strict=True))
        return {"history": plain_history(history), "changed": changed}

    def verdict(self, ctx, inputs, got, expected):
        settings = inputs["settings"]
        call = ("train_model(CharRNN(V, 16, 32), train_ids, val_ids, "
                + ", ".join(f"{key}={value}" for key, value in settings.items()) + ", clip=1.0)")
        lists = history_lists(got["history"], settings["epochs"], call)
        if not got["changed"]:
            raise Mismatch(f"{call} left the model's parameters unchanged; train the model you are given, in place",
                           expected="updated parameters", got="the same parameters as before")
        train = lists["train_loss"]
        if not train[-1] < train[0]:
            raise Mismatch(f"{call}: the training loss should fall over 3 epochs on a very repetitive text",
                           expected="train_loss[-1] < train_loss[0]", got=f"train_loss {train}")
        shown = {key: ", ".join(f"{v:.3f}" for v in values) for key, values in lists.items()}
        return Verdict.ok(f"the model was trained in place; train_loss [{shown['train_loss']}], "
                          f"val_loss [{shown['val_loss']}]")


# ---- sample ------------------------------------------------------------------------------

ALPHABET = "abcdefg"
SPREAD = 1.5  # the known logits lie in [-1.5, 1.5]: see the handout for the test's power at this spread


def alphabet_vocab() -> tuple[dict, list]:
    return {char: index for index, char in enumerate(ALPHABET)}, list(ALPHABET)


def require_sample(text, prefix: str, length: int, call: str) -> list[int]:
    """The ids of a sample's characters, after checking it is prefix + length characters of
    the alphabet (grading side)."""
    if not isinstance(text, str):
        raise Mismatch(f"{call} should return a str", expected="a str", got=describe(text))
    if not text.startswith(prefix):
        raise Mismatch(f"{call} should start with the prefix", expected=f"{prefix!r}...", got=f"{text[:20]!r}...")
    if len(text) != len(prefix) + length:
        raise Mismatch(f"{call} should return the prefix followed by exactly `length` new characters",
                       expected=f"length {len(prefix) + length}", got=f"length {len(text)}")
    stray = sorted(set(text) - set(ALPHABET))
    if stray:
        raise Mismatch(f"{call}: every character should come from itos", expected=f"characters of {ALPHABET!r}",
                       got=f"also {stray[:5]}")
    return [ALPHABET.index(char) for char in text]


class SampleOutput(Check):
    name = "sample_output"
    needs_reference = False
    PREFIX, LENGTH = "gab", 25

    def inputs(self, ctx):
        return {"table": random_table(len(ALPHABET), ctx.generator(), spread=SPREAD), "seed": int(torch.randint(
            0, 2**31 - 1, (1,), generator=ctx.generator("seed")))}

    @staticmethod
    def probe(student, inputs, device):
        model = KnownLogitsModel(inputs["table"]).to(device)
        stoi, itos = alphabet_vocab()

        def draw(prefix, length, **options):
            return student.attempt("sample", model, dict(stoi), list(itos), prefix, length, **options)

        def seeded():
            return torch.Generator(device=device).manual_seed(inputs["seed"])

        return {"first": draw(SampleOutput.PREFIX, SampleOutput.LENGTH, temperature=1.0, generator=seeded()),
                "again": draw(SampleOutput.PREFIX, SampleOutput.LENGTH, temperature=1.0, generator=seeded()),
                "defaults": draw("c", 10)}

    def verdict(self, ctx, inputs, got, expected):
        prefix, length = self.PREFIX, self.LENGTH
        call = f"sample(model, stoi, itos, {prefix!r}, {length}, temperature=1.0, generator=g)"
        first = value_of(got["first"], call)
        require_sample(first, prefix, length, call)
        require_sample(value_of(got["defaults"], "sample(model, stoi, itos, 'c', 10)"), "c", 10,
                       "sample(model, stoi, itos, 'c', 10)")
        again = value_of(got["again"], call)
        if again != first:
            raise Mismatch(f"{call} twice, with generators seeded alike, gave different samples; pass `generator` to "
                           "every random draw (torch.multinomial(probs, 1, generator=generator))",
                           expected=repr(first), got=repr(again))
        return Verdict.ok(f"{first!r}: a str with the prefix and {length} new characters of the vocabulary, the same "
                          "again with a generator seeded alike; the defaults work too")


class SampleTemperature(Check):
    """A chain of ``sample_length`` characters per temperature from a model whose next-character
    logits are a known (7, 7) table: its transition counts must fit softmax(table / T)
    (Pearson chi-square, false-alarm rate ``sampling_alpha`` per temperature)."""

    name = "sample_temperature"
    needs_reference = False
    PREFIX = "gab"
    TEMPERATURES = (0.5, 1.0, 2.0)

    def inputs(self, ctx):
        seeds = torch.randint(0, 2**31 - 1, (len(self.TEMPERATURES),), generator=ctx.generator("seed"))
        return {"table": random_table(len(ALPHABET), ctx.generator(), spread=SPREAD), "temperatures": list(self.TEMPERATURES),
                "length": ctx.budget("sample_length"), "seeds": seeds.tolist()}

    @staticmethod
    def probe(student, inputs, device):
        model = KnownLogitsModel(inputs["table"]).to(device)
        stoi, itos = alphabet_vocab()
        return [student.attempt("sample", model, dict(stoi), list(itos), SampleTemperature.PREFIX, inputs["length"],
                                temperature=temperature, generator=torch.Generator(device=device).manual_seed(seed))
                for temperature, seed in zip(inputs["temperatures"], inputs["seeds"], strict=True)]

    def verdict(self, ctx, inputs, got, expected):
        table, length, alpha = inputs["table"], inputs["length"], ctx.threshold("sampling_alpha")
        fits = []
        for temperature, record in zip(inputs["temperatures"], got, strict=True):
            call = f"sample(model, stoi, itos, {self.PREFIX!r}, {length}, temperature={temperature:g}, generator=g)"
            tokens = require_sample(value_of(record, call), self.PREFIX, length, call)
            counts = transition_counts(tokens, len(ALPHABET), first=len(self.PREFIX))
            fits.append(require_sampled_from(counts, temperature_probs(table, temperature),
                                             f"{call}, next character after each character", alpha=alpha,
                                             alternatives=wrong_samplers(table, temperature),
                                             token_names=list(ALPHABET)))
        shown = ", ".join(f"T={t:g}: p = {fit.p_value:.2g}" for t, fit in zip(inputs["temperatures"], fits, strict=True))
        return Verdict.ok(f"{length} characters per temperature fit softmax(logits / T) (chi-square test, "
                          f"alpha {alpha:g}; {shown})")


def wrong_samplers(table: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """The next-character distributions of common sampling mistakes (for hints); those equal
    to the right one at this temperature are left out."""
    right = temperature_probs(table, temperature)
    greedy = torch.nn.functional.one_hot(table.argmax(dim=-1), len(table)).to(torch.float64)
    found = {"softmax(logits * T) (the temperature multiplied, not divided)": temperature_probs(table, 1 / temperature),
             "softmax(logits) (the temperature ignored)": temperature_probs(table, 1.0),
             "the argmax of the logits (greedy decoding, no sampling)": greedy}
    return {what: probs for what, probs in found.items() if not torch.allclose(probs, right)}


# ---- the loss curves ---------------------------------------------------------------------

class LossCurves(Check):
    name = "loss_curves"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        epochs = torch.arange(1, 7, dtype=torch.float64)
        train = 1.6 + 1.4 / epochs + 0.02 * torch.rand(6, generator=generator, dtype=torch.float64)
        val = 1.8 + 1.1 / epochs + 0.02 * torch.rand(6, generator=generator, dtype=torch.float64)
        return {"history": {"train_loss": [round(v, 4) for v in train.tolist()],
                            "val_loss": [round(v, 4) for v in val.tolist()]}}

    @staticmethod
    def probe(student, inputs, device):
        history = {key: list(values) for key, values in inputs["history"].items()}
        return figure_data(student.plot_loss_curves(history))

    def verdict(self, ctx, inputs, got, expected):
        figures = png_bytes(got)
        try:
            require_curves(got, inputs["history"], "plot_loss_curves(history)",
                           label_words={"train_loss": ("train",), "val_loss": ("val", "held", "dev", "test")})
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
        return Verdict.ok("one labelled line per loss, equal to the history, with a legend", figures=figures)
