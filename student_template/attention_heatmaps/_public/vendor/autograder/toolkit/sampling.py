"""Checking a sampler statistically: a language model with known logits, and a test of what was drawn.

A student's ``sample`` cannot be compared with a reference token by token: two correct samplers
draw different tokens from the same generator. So the probe hands it a grader-made model whose
next-token logits are known (:class:`KnownLogitsModel`: they depend only on the current token,
``table[v]``), and the verdict checks that the tokens drawn follow ``softmax(table / T)``.

The test (:func:`goodness_of_fit`) is Pearson's chi-square on the transition counts, row by row
(one row per previous token), summed over rows; cells whose expected count is below
``min_expected`` are pooled within their row so the chi-square approximation holds. Its p-value
comes from the regularised upper incomplete gamma function (``torch.special.gammaincc``). A
check rejects when ``p < alpha``: alpha is the false-alarm rate for a correct sampler, and
:func:`sampling_power` measures, by simulation, how often a given wrong sampler is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autograder.toolkit.verdict import Mismatch


class KnownLogitsModel(nn.Module):
    """A bigram language model whose logits after token ``v`` are ``table[v]`` (shape (V, V)).

    ``forward(x (B, T) long, state=None) -> (scores (B, T, V), state)``: the scores are the logits
    (or their log-softmax with ``log_probs=True``, for assignments whose models return
    log-probabilities). The state is handed back unchanged (a zeros (1, B, 1) tensor when None),
    so a sampler that feeds the state back, or one that re-reads the whole sequence, both work.
    It may also be passed as ``hidden=`` (the name CharRNN's forward uses).
    The table is a parameter: samplers that ask ``next(model.parameters()).device`` find one.
    """

    def __init__(self, table: torch.Tensor, *, log_probs: bool = False):
        super().__init__()
        self.table = nn.Parameter(table.detach().clone().float(), requires_grad=False)
        self.log_probs = log_probs

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, 1, device=self.table.device)

    def forward(self, x: torch.Tensor, state=None, hidden=None):
        state = hidden if state is None else state
        scores = self.table[x.long().to(self.table.device)]
        if self.log_probs:
            scores = torch.log_softmax(scores, dim=-1)
        return scores, (self.init_hidden(x.shape[0]) if state is None else state)


def random_table(vocab_size: int, generator: torch.Generator, *, spread: float = 1.0) -> torch.Tensor:
    """(V, V) float32 logits, uniform in [-spread, spread]: every next token stays likely
    enough at moderate temperatures for the counts to be informative."""
    return ((torch.rand(vocab_size, vocab_size, generator=generator, dtype=torch.float64) * 2 - 1)
            * spread).float()


def temperature_probs(table: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(table / T)`` along the last axis, float64 (V, V)."""
    return torch.softmax(table.to(torch.float64) / temperature, dim=-1)


def transition_counts(tokens, vocab_size: int, *, first: int) -> torch.Tensor:
    """(V, V) int64: ``counts[a, b]`` = how often ``tokens[i-1] == a`` and ``tokens[i] == b``
    for ``i`` in ``range(first, len(tokens))`` (``first = len(prefix)``: the prefix's own pairs
    were not drawn). Ids outside ``range(vocab_size)`` raise ValueError."""
    ids = torch.as_tensor(list(tokens), dtype=torch.int64)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}")
    first = max(first, 1)
    pairs = ids[first - 1:-1] * vocab_size + ids[first:]
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size)


def argmax_path(table: torch.Tensor, prefix: list[int], length: int) -> list[int]:
    """``prefix`` followed by ``length`` greedy tokens: each the argmax of the row of the last."""
    path = list(prefix)
    for _ in range(length):
        path.append(int(torch.argmax(table[path[-1]])))
    return path


@dataclass(frozen=True)
class Fit:
    """A goodness-of-fit result: Pearson's statistic, its degrees of freedom, the p-value, and
    the number of cells tested after pooling."""

    statistic: float
    dof: int
    p_value: float
    cells: int


def goodness_of_fit(counts: torch.Tensor, probs: torch.Tensor, *, min_expected: float = 5.0) -> Fit:
    """Pearson's chi-square of ``counts`` (R, V) against the rows of ``probs`` (R, V), summed over
    rows that have any counts; within a row, cells expected fewer than ``min_expected`` times are
    pooled into one cell (which joins the smallest other cell if it is still too small)."""
    counts, probs = counts.to(torch.float64), probs.to(torch.float64)
    statistic, dof, cells = 0.0, 0, 0
    for observed_row, prob_row in zip(counts, probs, strict=True):
        total = float(observed_row.sum())
        if total == 0:
            continue
        if ((prob_row == 0) & (observed_row > 0)).any():  # a draw the distribution forbids
            return Fit(float("inf"), max(dof, 1), 0.0, cells + len(observed_row))
        observed, expected = _pooled(observed_row, prob_row * total, min_expected)
        keep = expected > 0
        observed, expected = observed[keep], expected[keep]
        statistic += float(((observed - expected) ** 2 / expected).sum())
        dof += len(observed) - 1
        cells += len(observed)
    return Fit(statistic, dof, chi2_survival(statistic, dof), cells)


def _pooled(observed: torch.Tensor, expected: torch.Tensor, min_expected: float):
    small = expected < min_expected
    if small.sum() <= 0:
        return observed, expected
    pooled_observed = torch.cat([observed[~small], observed[small].sum().reshape(1)])
    pooled_expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    if pooled_expected[-1] < min_expected and len(pooled_expected) > 2:
        smallest = int(torch.argmin(pooled_expected[:-1]))  # merge the leftover into the smallest cell
        pooled_observed[smallest] += pooled_observed[-1]
        pooled_expected[smallest] += pooled_expected[-1]
        pooled_observed, pooled_expected = pooled_observed[:-1], pooled_expected[:-1]
    return pooled_observed, pooled_expected


def chi2_survival(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof): Q(dof / 2, statistic / 2)."""
    if dof <= 0:
        return 1.0
    if statistic == float("inf"):
        return 0.0
    half = torch.tensor(dof / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(half, torch.tensor(statistic / 2, dtype=torch.float64)))


def require_sampled_from(counts: torch.Tensor, probs: torch.Tensor, what: str, *, alpha: float,
                         alternatives: dict[str, torch.Tensor] | None = None,
                         token_names: list[str] | None = None) -> Fit:
    """The fit of ``counts`` to ``probs``; raises Mismatch when ``p < alpha``, naming the cell
    whose frequency is furthest off (tokens shown as ``token_names`` when given), and the first
    of ``alternatives`` (known wrong distributions, e.g. ``{"softmax(logits * T)": ...}``) that
    the counts do fit."""
    fit = goodness_of_fit(counts, probs)
    if fit.p_value >= alpha:
        return fit
    counts64 = counts.to(torch.float64)
    totals = counts64.sum(dim=1, keepdim=True)
    frequencies = counts64 / totals.clamp(min=1)
    gaps = (frequencies - probs.to(torch.float64)).abs() * (totals > 0)
    row, col = divmod(int(torch.argmax(gaps)), counts.shape[1])
    before, after = (repr(token_names[row]), repr(token_names[col])) if token_names else (row, col)
    hint = ""
    for description, alternative in (alternatives or {}).items():
        if goodness_of_fit(counts, alternative).p_value >= alpha:
            hint = f"; the draws fit {description} instead"
            break
    raise Mismatch(
        f"{what}: the tokens drawn do not follow the model's distribution{hint} (chi-square "
        f"{fit.statistic:.1f} on {fit.dof} degrees of freedom, p = {fit.p_value:.2g}; the test fails "
        f"below {alpha:g}). After token {before}, token {after} was drawn {float(frequencies[row, col]):.1%} "
        f"of the time ({int(counts[row, col])} of {int(totals[row])})",
        expected=f"about {float(probs[row, col]):.1%} after token {before}",
        got=f"{float(frequencies[row, col]):.1%}")


def draw_chains(probs: torch.Tensor, first_token: int, length: int, count: int,
                generator: torch.Generator) -> torch.Tensor:
    """(count, length + 1) int64: ``count`` independent Markov chains with transition rows
    ``probs``, each starting at ``first_token`` and followed by ``length`` draws."""
    chains = torch.full((count, length + 1), first_token, dtype=torch.int64)
    for step in range(1, length + 1):
        chains[:, step] = torch.multinomial(probs[chains[:, step - 1]], 1, generator=generator).squeeze(1)
    return chains


def sampling_power(null_probs: torch.Tensor, alt_probs: torch.Tensor, *, first_token: int, length: int,
                   alpha: float, trials: int, generator: torch.Generator) -> float:
    """The fraction of ``trials`` chains of ``length`` draws from ``alt_probs`` that the test
    against ``null_probs`` rejects at ``alpha``. With ``alt_probs = null_probs`` this estimates
    the false-alarm rate (which is ``alpha`` in theory)."""
    chains = draw_chains(alt_probs.to(torch.float64), first_token, length, trials, generator)
    rejected = sum(goodness_of_fit(transition_counts(chain.tolist(), null_probs.shape[0], first=1),
                                   null_probs).p_value < alpha for chain in chains)
    return rejected / trials
