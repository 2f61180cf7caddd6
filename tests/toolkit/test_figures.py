"""autograder.toolkit.figures: heatmaps read back from real matplotlib/seaborn figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import LogNorm

from autograder.sandbox import wire
from autograder.toolkit.figures import (
    PNG_SIGNATURE,
    figure_data,
    png_bytes,
    require_curves,
    require_figure,
    require_heatmap,
    require_png,
    saved_file,
)
from autograder.toolkit.verdict import Mismatch

COLUMNS, ROWS = list("keeper"), list("eepers")


@pytest.fixture
def weights():
    return torch.softmax(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)), dim=-1)


def read_back(figure) -> dict:
    """What the grading process receives: figure_data through the wire format."""
    return wire.decode(*wire.encode(figure_data(figure)))


def imshow_figure(matrix, *, norm=None, ticks=True, colorbar=True):
    fig, ax = plt.subplots()
    image = ax.imshow(matrix.numpy(), norm=norm)
    if ticks:
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_xticklabels(COLUMNS)
        ax.set_yticks(range(matrix.shape[0]))
        ax.set_yticklabels(ROWS)
    if colorbar:
        fig.colorbar(image)
    return fig


def check(data, weights, **options):
    return require_heatmap(require_figure(data, "plot"), weights, "plot", x_labels=COLUMNS, y_labels=ROWS, **options)


def test_imshow_is_read_back_with_its_labels_and_a_png(weights):
    figure = imshow_figure(weights)
    data = read_back(figure)
    panel = check(data, weights, log_scale=False)
    assert panel["kind"] == "image" and torch.allclose(panel["matrix"], weights.double())
    assert png_bytes(data)[0].startswith(PNG_SIGNATURE)
    assert figure.number not in plt.get_fignums()  # the probe closes what it read


@pytest.mark.parametrize("extent", [None, (0, 6, 0, 6)])
def test_origin_lower_and_an_extent_keep_each_label_on_its_row(weights, extent):
    fig, ax = plt.subplots()
    ax.imshow(weights.numpy(), origin="lower", extent=extent)
    offset = 0.0 if extent is None else 0.5
    ax.set_xticks([i + offset for i in range(6)], COLUMNS)
    ax.set_yticks([i + offset for i in range(6)], ROWS)  # row 0 is at the bottom with origin="lower"
    check(read_back(fig), weights)
    fig, ax = plt.subplots()
    ax.imshow(weights.numpy(), origin="lower", extent=extent)
    ax.set_xticks([i + offset for i in range(6)], COLUMNS)
    ax.set_yticks([5 - i + offset for i in range(6)], ROWS)  # labelled top to bottom: wrong rows
    with pytest.raises(Mismatch, match="y axis"):
        check(read_back(fig), weights)


def test_seaborn_heatmap_mesh_is_read_back(weights):
    seaborn = pytest.importorskip("seaborn")
    fig, ax = plt.subplots()
    seaborn.heatmap(weights.numpy(), xticklabels=COLUMNS, yticklabels=ROWS, ax=ax)
    panel = check(read_back(fig), weights, log_scale=False)
    assert panel["kind"] == "mesh"


def test_pcolormesh_with_centred_ticks_passes(weights):
    fig, ax = plt.subplots()
    ax.pcolormesh(weights.numpy())
    ax.set_xticks([i + 0.5 for i in range(6)], COLUMNS)
    ax.set_yticks([i + 0.5 for i in range(6)], ROWS)
    assert check(read_back(fig), weights)["kind"] == "mesh"


def test_log_norm_is_required_when_asked_and_masked_zeros_are_accepted(weights):
    with_zero = weights.clone()
    with_zero[0, 5] = 0.0  # LogNorm masks it: still the weights that were passed
    data = read_back(imshow_figure(with_zero, norm=LogNorm(vmin=1e-4, vmax=1)))
    check(data, with_zero, log_scale=True)
    with pytest.raises(Mismatch, match="linear colour scale"):
        check(data, with_zero, log_scale=False)
    with pytest.raises(Mismatch, match="LogNorm"):
        check(read_back(imshow_figure(weights)), weights, log_scale=True)


def test_transposed_matrix_fails_with_a_hint(weights):
    with pytest.raises(Mismatch, match="transpose"):
        check(read_back(imshow_figure(weights.T.contiguous())), weights)


def test_other_values_fail(weights):
    with pytest.raises(Mismatch, match="not the weights passed in"):
        check(read_back(imshow_figure(weights * 2)), weights)


def test_labels_without_tick_positions_land_on_the_wrong_cells(weights):
    fig, ax = plt.subplots()
    ax.pcolormesh(weights.numpy())  # cells centred at i + 0.5, default ticks at integers
    with pytest.warns(UserWarning):
        ax.set_xticklabels(COLUMNS)
    with pytest.raises(Mismatch, match="x axis") as failure:
        check(read_back(fig), weights)
    assert "cell 0 is labelled None" in failure.value.message


def test_swapped_axis_labels_fail(weights):
    fig, ax = plt.subplots()
    ax.imshow(weights.numpy())
    ax.set_xticks(range(6), ROWS)
    ax.set_yticks(range(6), COLUMNS)
    with pytest.raises(Mismatch, match="x axis"):
        check(read_back(fig), weights)


def test_not_a_figure_names_what_came_back(weights):
    fig, ax = plt.subplots()
    with pytest.raises(Mismatch, match="not the Axes"):
        require_figure(read_back(ax), "plot")
    assert fig.number not in plt.get_fignums()
    fig, ax = plt.subplots()
    with pytest.raises(Mismatch, match="return fig"):
        require_figure(read_back(None), "plot")
    with pytest.raises(Mismatch, match="no heatmap"):
        require_figure(read_back(fig), "plot")


# ---- line plots: a loss history -----------------------------------------------------------

HISTORY = {"train_loss": [3.1, 2.6, 2.2, 2.0], "val_loss": [3.2, 2.8, 2.5, 2.45]}
LABEL_WORDS = {"train_loss": ("train",), "val_loss": ("val",)}


def curves_figure(*, labels=("train", "validation"), legend="axes", swap=False, epochs=None, values=None):
    fig, ax = plt.subplots()
    first, second = ("val_loss", "train_loss") if swap else ("train_loss", "val_loss")
    x = epochs if epochs is not None else range(1, 5)
    ax.plot(x, values or HISTORY[first], label=labels[0] if labels else None)
    ax.plot(x, HISTORY[second], label=labels[1] if labels else None)
    if legend == "axes":
        ax.legend()
    elif legend == "figure":
        fig.legend()
    return fig


def check_curves(data):
    return require_curves(data, HISTORY, "plot_loss_curves(history)", label_words=LABEL_WORDS)


@pytest.mark.parametrize("legend", ["axes", "figure"])
def test_two_labelled_lines_equal_to_the_history_pass(legend):
    train, val = check_curves(read_back(curves_figure(legend=legend)))
    assert (train["label"], val["label"]) == ("train", "validation")
    assert train["y"].tolist() == HISTORY["train_loss"] and val["x"].tolist() == [1, 2, 3, 4]


def test_a_line_that_is_not_the_history_fails_and_shows_both():
    with pytest.raises(Mismatch, match="no line plots train_loss") as failure:
        check_curves(read_back(curves_figure(values=[0.1, 0.2, 0.3, 0.4])))
    assert "3.1" in failure.value.expected and "0.1" in failure.value.got


def test_unlabelled_lines_and_a_missing_legend_fail_with_the_fix():
    with pytest.raises(Mismatch, match="no label; pass `label=...`"):
        check_curves(read_back(curves_figure(labels=None, legend=None)))
    with pytest.raises(Mismatch, match=r"not shown; call `ax.legend\(\)`"):
        check_curves(read_back(curves_figure(legend=None)))


def test_swapped_labels_are_caught():
    with pytest.raises(Mismatch, match="labels swapped"):
        check_curves(read_back(curves_figure(swap=True)))


def test_epochs_must_increase_and_labels_must_differ():
    with pytest.raises(Mismatch, match="increasing"):
        check_curves(read_back(curves_figure(epochs=[4, 3, 2, 1])))
    with pytest.raises(Mismatch, match="share the label"):
        require_curves(read_back(curves_figure(labels=("loss", "loss"))), HISTORY, "plot")


def test_a_figure_without_lines_or_an_axes_fails():
    fig, ax = plt.subplots()
    ax.imshow(torch.eye(3).numpy())
    with pytest.raises(Mismatch, match="no line"):
        check_curves(read_back(fig))
    fig, ax = plt.subplots()
    with pytest.raises(Mismatch, match="not the Axes"):
        check_curves(read_back(ax))


# ---- a PNG the student's code saved ------------------------------------------------------

def saved_png(tmp_path, draw=True, **savefig) -> torch.Tensor | None:
    """What the probe sends back after the student's code saved a figure: the file's bytes."""
    fig, ax = plt.subplots(figsize=(4, 3))
    if draw:
        ax.imshow(torch.rand(5, 5, generator=torch.Generator().manual_seed(1)).numpy())
    else:
        ax.set_axis_off()
    path = tmp_path / "attention_heatmap.png"
    fig.savefig(path, **savefig)
    plt.close(fig)
    return wire.decode(*wire.encode({"png": saved_file(path)}))["png"]


def test_a_saved_heatmap_png_passes_and_its_size_is_read(tmp_path):
    assert require_png(saved_png(tmp_path, dpi=100), "visualize_attention") == (400, 300)


def test_no_file_a_non_png_and_a_truncated_png_each_say_what_is_wrong(tmp_path):
    with pytest.raises(Mismatch, match="wrote no file"):
        require_png(saved_file(tmp_path / "missing.png"), "visualize_attention")
    with pytest.raises(Mismatch, match="not a PNG"):
        require_png(b"%PDF-1.4 not an image", "visualize_attention")
    broken = saved_png(tmp_path, dpi=100).numpy().tobytes()
    with pytest.raises(Mismatch, match="cannot be decoded"):
        require_png(broken[: len(broken) // 2], "visualize_attention")


def test_sizes_outside_the_bounds_fail_before_decoding(tmp_path):
    with pytest.raises(Mismatch, match="40 x 30 pixels") as caught:
        require_png(saved_png(tmp_path, dpi=10), "visualize_attention")
    assert "between 200 x 150" in caught.value.expected
    huge = PNG_SIGNATURE + (13).to_bytes(4, "big") + b"IHDR" + (10**6).to_bytes(4, "big") * 2 + b"\x08\x06\0\0\0"
    with pytest.raises(Mismatch, match="1000000 x 1000000 pixels"):
        require_png(huge, "visualize_attention")


def test_a_blank_image_fails(tmp_path):
    with pytest.raises(Mismatch, match="blank image"):
        require_png(saved_png(tmp_path, draw=False, dpi=100), "visualize_attention")


def test_saved_file_caps_what_it_reads(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 5000)
    assert saved_file(path, max_bytes=1000).numel() == 1000
