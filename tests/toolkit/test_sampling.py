"""autograder.toolkit.sampling: the known-logits model and the goodness-of-fit test of a sampler."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.toolkit.sampling import (
    KnownLogitsModel,
    argmax_path,
    chi2_survival,
    draw_chains,
    goodness_of_fit,
    random_table,
    require_sampled_from,
    sampling_power,
    temperature_probs,
    transition_counts,
)
from autograder.toolkit.verdict import Mismatch

V = 6


@pytest.fixture
def table():
    return random_table(V, torch.Generator().manual_seed(1), spread=2.0)


def test_known_logits_model_gives_the_row_of_the_current_token(table):
    model = KnownLogitsModel(table)
    x = torch.tensor([[0, 3, 5], [2, 2, 1]])
    scores, state = model(x)
    assert scores.shape == (2, 3, V) and torch.equal(scores[0, 1], table[3])
    assert state.shape == (1, 2, 1) and model(x, state)[1] is state
    log_probs, _ = KnownLogitsModel(table, log_probs=True)(x)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 3))
    assert len(list(model.parameters())) == 1


def test_transition_counts_skip_the_prefix_pairs():
    counts = transition_counts([0, 1, 2, 1, 2], 3, first=2)  # prefix [0, 1]: pairs (1,2), (2,1), (1,2)
    assert counts.tolist() == [[0, 0, 0], [0, 0, 2], [0, 1, 0]]
    with pytest.raises(ValueError, match="0..2"):
        transition_counts([0, 3], 3, first=1)


def test_argmax_path_follows_the_largest_logit(table):
    path = argmax_path(table, [4], 5)
    assert path[0] == 4 and all(path[i + 1] == int(table[path[i]].argmax()) for i in range(5))


def test_chi2_survival_matches_known_quantiles():
    # chi-square(1): P(X >= 3.841) = 0.05; chi-square(10): P(X >= 23.209) = 0.01; mean of chi2(k) is k
    assert chi2_survival(3.841459, 1) == pytest.approx(0.05, rel=1e-5)
    assert chi2_survival(23.209251, 10) == pytest.approx(0.01, rel=1e-5)
    assert chi2_survival(0.0, 4) == 1.0 and chi2_survival(math.inf, 4) == 0.0


def test_exact_expected_counts_fit_perfectly_and_small_cells_are_pooled():
    probs = torch.tensor([[0.5, 0.3, 0.19, 0.01]])
    fit = goodness_of_fit(torch.tensor([[500, 300, 190, 10]]), probs, min_expected=20)
    assert fit.statistic == pytest.approx(0.0) and fit.p_value == pytest.approx(1.0)
    assert fit.cells == 3 and fit.dof == 2  # the 1% cell (10 expected) joined the smallest other cell


def test_a_draw_the_distribution_forbids_fails_outright():
    fit = goodness_of_fit(torch.tensor([[10, 0, 1]]), torch.tensor([[0.5, 0.5, 0.0]]))
    assert fit.p_value == 0.0


def test_correct_draws_pass_and_false_alarms_stay_near_alpha(table):
    probs = temperature_probs(table, 0.7)
    generator = torch.Generator().manual_seed(3)
    chains = draw_chains(probs, 0, 1500, 8, generator)
    for chain in chains:
        require_sampled_from(transition_counts(chain.tolist(), V, first=1), probs, "sample", alpha=1e-6)
    assert sampling_power(probs, probs, first_token=0, length=1500, alpha=0.05, trials=300,
                          generator=generator) < 0.1


def test_multiplied_temperature_is_rejected_with_a_hint(table):
    temperature = 0.5
    right, wrong = temperature_probs(table, temperature), temperature_probs(table, 1 / temperature)
    counts = transition_counts(draw_chains(wrong, 0, 2000, 1, torch.Generator().manual_seed(4))[0].tolist(),
                               V, first=1)
    with pytest.raises(Mismatch, match=r"fit softmax\(logits \* T\) instead") as failure:
        require_sampled_from(counts, right, "sample at T=0.5", alpha=1e-6, token_names=list("abcdef"),
                             alternatives={"softmax(logits * T)": wrong})
    assert "After token '" in failure.value.message and "%" in failure.value.expected


def test_power_against_ignored_temperature_is_high(table):
    power = sampling_power(temperature_probs(table, 0.5), temperature_probs(table, 1.0), first_token=0,
                           length=1500, alpha=1e-6, trials=50, generator=torch.Generator().manual_seed(5))
    assert power == 1.0


def test_known_logits_model_takes_the_state_as_hidden_too(table):
    model = KnownLogitsModel(table)
    state = model.init_hidden(1)
    assert model(torch.tensor([[1]]), hidden=state)[1] is state
