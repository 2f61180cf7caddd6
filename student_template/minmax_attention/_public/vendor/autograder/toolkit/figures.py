"""Figures checked by their data: read back what a matplotlib ``Figure`` plots.

Two halves, like every check:

* :func:`figure_data` runs in the probe (worker): it draws the figure once, reads every
  heatmap-like artist (an ``imshow``/``matshow`` image, a ``pcolormesh`` or seaborn mesh) as a
  matrix with the centres of its rows and columns, the tick labels and their positions, the
  colour normalisation, every line (its x and y data, its label, whether a legend shows it),
  and renders a small PNG. All of it is plain data.
* :func:`require_heatmap` runs in the verdict (grading process): it finds the panel that plots
  the expected matrix and checks the labels under each column and beside each row, and the
  colour scale. :func:`require_curves` finds the labelled line that plots each series (a loss
  history, say). :func:`png_bytes` gives the PNG for the report.
* A PNG a student's code saved to disk travels back as bytes (:func:`saved_file`, probe side)
  and :func:`require_png` decodes it in the grading process: a readable image of a sensible
  size with something drawn on it.

Only matplotlib is needed (imported lazily: the grading process never draws).
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.verdict import Mismatch, max_abs_error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DPI = 72


def figure_data(figure, *, dpi: int = PNG_DPI) -> dict:
    """Plain-data description of ``figure`` (see the module docstring); closes it afterwards."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        if isinstance(getattr(figure, "figure", None), Figure):  # an Axes: close its figure all the same
            plt.close(figure.figure)
        return {"is_figure": False, "type": type(figure).__name__, "panels": [], "lines": [], "png": None}

    try:
        figure.canvas.draw()  # tick labels are only final once drawn
        panels = [panel for axes in figure.axes for panel in _panels(axes)]
        figure_legend = {text.get_text() for legend in figure.legends for text in legend.get_texts()}
        lines = [line for axes in figure.axes for line in _lines(axes, figure_legend)]
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        png = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    finally:
        plt.close(figure)
    return {"is_figure": True, "type": type(figure).__name__, "panels": panels, "lines": lines, "png": png}


def saved_file(path, *, max_bytes: int = 16 * 2**20) -> torch.Tensor | None:
    """The bytes of a file the student's code wrote (``None`` if there is none), as a uint8
    tensor for the wire; a file over ``max_bytes`` is cut there (the verdict then reports an
    undecodable PNG rather than the worker sending megabytes)."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as stream:
        raw = stream.read(max_bytes)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.zeros(0, dtype=torch.uint8)


def _panels(axes) -> list[dict]:
    from matplotlib.collections import QuadMesh
    from matplotlib.image import AxesImage

    found = []
    for artist in [*axes.images, *axes.collections]:
        if isinstance(artist, AxesImage):
            matrix = _matrix(artist.get_array())
            if matrix is None:
                continue
            left, right, bottom, top = artist.get_extent()
            rows, cols = matrix.shape
            col_centres = [left + (i + 0.5) * (right - left) / cols for i in range(cols)]
            first, last = (top, bottom) if artist.origin == "upper" else (bottom, top)  # where row 0 sits
            row_centres = [first + (i + 0.5) * (last - first) / rows for i in range(rows)]
            kind = "image"
        elif isinstance(artist, QuadMesh):
            coordinates = np.asarray(artist.get_coordinates())  # (rows + 1, cols + 1, 2)
            rows, cols = coordinates.shape[0] - 1, coordinates.shape[1] - 1
            matrix = _matrix(artist.get_array(), (rows, cols))
            if matrix is None:
                continue
            col_centres = list((coordinates[0, :-1, 0] + coordinates[0, 1:, 0]) / 2)
            row_centres = list((coordinates[:-1, 0, 1] + coordinates[1:, 0, 1]) / 2)
            kind = "mesh"
        else:
            continue
        norm = artist.norm
        found.append({
            "kind": kind, "matrix": matrix,
            "col_centres": [float(x) for x in col_centres], "row_centres": [float(y) for y in row_centres],
            "xticks": _ticks(axes.get_xticks(), axes.get_xticklabels()),
            "yticks": _ticks(axes.get_yticks(), axes.get_yticklabels()),
            "norm": [cls.__name__ for cls in type(norm).__mro__],
            "title": axes.get_title(),
        })
    return found


def _lines(axes, figure_legend: set[str]) -> list[dict]:
    """Every ``Line2D`` of ``axes``: x and y as float64 tensors, the label (matplotlib names
    unlabelled lines ``_child0``...: those count as unlabelled), and whether a legend shows it."""
    legend = axes.get_legend()
    shown = figure_legend | ({text.get_text() for text in legend.get_texts()} if legend else set())
    found = []
    for line in axes.get_lines():
        label = str(line.get_label())
        labelled = bool(label) and not label.startswith("_")
        found.append({
            "x": torch.as_tensor(np.asarray(line.get_xdata(), dtype=np.float64)),
            "y": torch.as_tensor(np.asarray(line.get_ydata(), dtype=np.float64)),
            "label": label if labelled else "", "in_legend": labelled and label in shown,
            "title": axes.get_title(), "xlabel": axes.get_xlabel(), "ylabel": axes.get_ylabel(),
        })
    return found


def _matrix(array, shape=None) -> torch.Tensor | None:
    """The plotted values as a float64 (rows, cols) tensor (masked cells as NaN); None for
    anything that is not a plain 2-D matrix (an RGB image, say)."""
    if array is None:
        return None
    values = np.ma.filled(np.ma.asarray(array, dtype=np.float64), np.nan)
    if values.ndim == 1 and shape is not None and values.size == shape[0] * shape[1]:
        values = values.reshape(shape)
    if values.ndim != 2:
        return None
    return torch.from_numpy(np.ascontiguousarray(values))


def _ticks(positions, labels) -> list[list]:
    return [[float(position), label.get_text()] for position, label in zip(positions, labels, strict=False)]


# ---- grading side ----------------------------------------------------------------------

def png_bytes(data) -> list[bytes]:
    """The rendered PNG of a :func:`figure_data` result, for ``Verdict.figures`` ([] if none)."""
    if isinstance(data, dict) and isinstance(data.get("png"), torch.Tensor):
        raw = data["png"].numpy().tobytes()
        return [raw] if raw.startswith(PNG_SIGNATURE) else []
    return []


def require_png(data, what: str, *, min_size: tuple[int, int] = (200, 150),
                max_size: tuple[int, int] = (8000, 8000), min_ink: float = 0.005) -> tuple[int, int]:
    """Check the bytes of a saved PNG (``bytes`` or a uint8 tensor, ``None`` when no file was
    written): a PNG that decodes, whose (width, height) lie within the bounds, and on which
    at least ``min_ink`` of the pixels differ from the most common colour. The size is read
    from the header before anything is decoded, so a huge image costs nothing. Returns
    (width, height)."""
    if isinstance(data, torch.Tensor):
        data = data.numpy().tobytes()
    if data is None:
        raise Mismatch(f"{what} wrote no file", expected="a PNG file at save_path", got="no file")
    if not isinstance(data, bytes) or not data.startswith(PNG_SIGNATURE):
        start = data[:8] if isinstance(data, bytes) else describe(data)
        raise Mismatch(f"{what} wrote a file that is not a PNG (save it with `savefig(save_path)` and a "
                       "'.png' name, or `format='png'`)", expected="a PNG file", got=f"a file starting {start!r}")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise Mismatch(f"{what} wrote a PNG with no image header", expected="a complete PNG",
                       got=f"{len(data)} bytes")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    size = f"{width} x {height} pixels"
    if not (min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1]):
        raise Mismatch(f"{what} saved an image of {size}; keep the figure readable (matplotlib's default "
                       "size and dpi are fine)", expected=f"between {min_size[0]} x {min_size[1]} and "
                       f"{max_size[0]} x {max_size[1]} pixels", got=size)
    pixels = _decode_png(data, what)
    flat = pixels.reshape(-1, pixels.shape[-1])
    _, counts = np.unique(flat, axis=0, return_counts=True)
    ink = 1.0 - counts.max() / len(flat)
    if ink < min_ink:
        raise Mismatch(f"{what} saved a blank image: draw the figure before saving it, and save the figure you "
                       "drew on (e.g. `fig.savefig(save_path)`)", expected=f"at least {min_ink:.1%} of the "
                       "pixels drawn", got=f"{ink:.2%} of {size} differ from the background")
    return width, height


def _decode_png(data: bytes, what: str) -> np.ndarray:
    """(height, width, channels) uint8 pixels of a PNG, or a Mismatch if it does not decode."""
    from PIL import Image  # Pillow comes with matplotlib

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGBA"))
    except Exception as error:  # noqa: BLE001 - any decoder error means the same thing here
        raise Mismatch(f"{what} wrote a PNG that cannot be decoded ({type(error).__name__}: {error})",
                       expected="a readable PNG", got=f"{len(data)} bytes that do not decode") from None


def require_figure(data, what: str) -> list[dict]:
    """The panels of a figure a student's plotting function returned."""
    if not isinstance(data, dict) or "is_figure" not in data:
        raise Mismatch(f"{what} did not return a figure", expected="a matplotlib Figure", got=describe(data))
    if not data["is_figure"]:
        hint = (" (return `fig`, e.g. from `fig, ax = plt.subplots()`, not the Axes)"
                if "Axes" in data["type"] else " (end the function with `return fig`)")
        raise Mismatch(f"{what} should return a matplotlib Figure{hint}",
                       expected="matplotlib.figure.Figure", got=f"an object of type {data['type']}")
    if not data["panels"]:
        raise Mismatch(f"{what} returned a figure with no heatmap in it; draw the weights with "
                       "`ax.imshow(weights)`, `ax.pcolormesh(weights)` or `seaborn.heatmap(weights)`",
                       expected="an image or mesh of the weights", got="no image or mesh in any axes")
    return data["panels"]


def require_curves(data, curves: dict[str, list[float]], what: str, *, rtol: float = 1e-5,
                   label_words: dict[str, tuple[str, ...]] | None = None) -> list[dict]:
    """For each named series (e.g. ``{"train_loss": [...], "val_loss": [...]}``) the line that
    plots it: y equal to the values, one point per value, x increasing; each line must carry
    its own label, shown in a legend, and (where ``label_words`` names words for the series)
    a label containing one of them, case-insensitively, so that swapped labels are caught.
    Returns the lines in the order of ``curves``."""
    if not isinstance(data, dict) or "is_figure" not in data:
        raise Mismatch(f"{what} did not return a figure", expected="a matplotlib Figure", got=describe(data))
    if not data["is_figure"]:
        require_figure(data, what)  # raises with the Axes / None hint
    lines = data.get("lines", [])
    if not lines:
        raise Mismatch(f"{what} returned a figure with no line in it; plot each series with `ax.plot(...)`",
                       expected=f"{len(curves)} lines ({', '.join(curves)})", got="no line in any axes")
    found = []
    for name, values in curves.items():
        expected = torch.as_tensor(values, dtype=torch.float64)
        matches = [line for line in lines if line["y"].shape == expected.shape
                   and torch.allclose(line["y"], expected, rtol=rtol, atol=1e-12)]
        if not matches:
            raise Mismatch(f"{what}: no line plots {name} as given ({len(expected)} values, one per epoch); "
                           "plot the history you were passed, unchanged",
                           expected=_values(expected), got="; ".join(_values(line["y"]) for line in lines[:4]))
        line = matches[0]
        if len(line["x"]) > 1 and not bool((line["x"].diff() > 0).all()):
            raise Mismatch(f"{what}: the x values of the {name} line should be the epochs, increasing",
                           expected="increasing epoch numbers", got=_values(line["x"]))
        if not line["label"]:
            raise Mismatch(f"{what}: the line for {name} has no label; pass `label=...` to `ax.plot`",
                           expected="a label such as 'train' / 'validation'", got="no label")
        words = (label_words or {}).get(name)
        if words and not any(word.lower() in line["label"].lower() for word in words):
            raise Mismatch(f"{what}: the line that plots {name} is labelled {line['label']!r}; "
                           f"its label should say {' or '.join(map(repr, words))} (are the labels swapped?)",
                           expected=f"a label containing {' or '.join(map(repr, words))}", got=repr(line["label"]))
        if not line["in_legend"]:
            raise Mismatch(f"{what}: the {name} line's label {line['label']!r} is not shown; call `ax.legend()`",
                           expected="a legend naming each line", got="no legend entry")
        found.append(line)
    labels = [line["label"] for line in found]
    if len(set(labels)) < len(labels):
        raise Mismatch(f"{what}: the lines for {', '.join(curves)} share the label {labels[0]!r}; "
                       "give each its own", expected="distinct labels", got=repr(labels))
    return found


def _values(tensor: torch.Tensor) -> str:
    shown = ", ".join(f"{float(v):.4g}" for v in tensor[:6])
    return f"[{shown}{', ...' if len(tensor) > 6 else ''}] ({len(tensor)} values)"


def require_heatmap(panels: list[dict], weights: torch.Tensor, what: str, *, x_labels: list[str],
                    y_labels: list[str], log_scale: bool | None = None, atol: float = 1e-6) -> dict:
    """The panel whose matrix equals ``weights`` (rows = y axis, columns = x axis), with
    ``x_labels[i]`` under column i, ``y_labels[i]`` beside row i, and a logarithmic colour
    scale exactly when ``log_scale`` is True (None: either)."""
    shaped = [panel for panel in panels if tuple(panel["matrix"].shape) == tuple(weights.shape)]
    if not shaped:
        flipped = [panel for panel in panels if tuple(panel["matrix"].shape) == tuple(weights.shape[::-1])]
        hint = " (it looks transposed: rows should be the outputs/queries)" if flipped else ""
        raise Mismatch(f"{what}: no heatmap of the right size{hint}", expected=f"a {tuple(weights.shape)} matrix",
                       got=", ".join(str(tuple(p["matrix"].shape)) for p in panels))
    errors = [_matrix_error(panel["matrix"], weights) for panel in shaped]
    best = shaped[int(np.argmin(errors))]
    if min(errors) > atol:
        transposed = weights.shape[0] == weights.shape[1] and _matrix_error(best["matrix"], weights.T) <= atol
        hint = ("; it is the transpose: put the outputs (queries) on the rows and the inputs on the columns"
                if transposed else "; plot the weights you were given, unchanged")
        raise Mismatch(f"{what}: the plotted matrix is not the weights passed in{hint}",
                       expected="the weights", got=f"max abs difference {min(errors):.3g}")
    _require_labels(best["xticks"], best["col_centres"], x_labels, f"{what}: x axis (columns)")
    _require_labels(best["yticks"], best["row_centres"], y_labels, f"{what}: y axis (rows)")
    is_log = "LogNorm" in best["norm"]
    if log_scale is True and not is_log:
        raise Mismatch(f"{what}: log_scale=True should give a logarithmic colour scale "
                       "(`norm=matplotlib.colors.LogNorm()`)", expected="LogNorm", got=best["norm"][0])
    if log_scale is False and is_log:
        raise Mismatch(f"{what}: log_scale=False should give a linear colour scale", expected="Normalize",
                       got=best["norm"][0])
    return best


def _matrix_error(matrix: torch.Tensor, weights: torch.Tensor) -> float:
    matrix, weights = matrix.to(torch.float64), weights.detach().to(torch.float64)
    nan = torch.isnan(matrix)  # a log-scale plot masks zeros; a masked cell must be a zero weight
    if (nan & (weights != 0)).any():
        return float("inf")
    return max_abs_error(torch.where(nan, weights, matrix), weights)


def _require_labels(ticks: list, centres: list[float], labels: list[str], what: str) -> None:
    """``labels[i]`` must be the text of the tick nearest the centre of cell i (within half a
    cell): labels set without matching tick positions land under the wrong cell."""
    if len(centres) < 2:
        spacing = 1.0
    else:
        spacing = abs(centres[1] - centres[0])
    shown = []
    for centre in centres:
        near = [(abs(position - centre), text) for position, text in ticks if abs(position - centre) < spacing / 2]
        shown.append(min(near)[1] if near else None)
    if shown != [str(label) for label in labels]:
        wrong = next(i for i, (a, b) in enumerate(zip(shown, labels, strict=True)) if a != str(b))
        raise Mismatch(f"{what}: tick labels should be the characters/tokens, one per cell "
                       f"(`ax.set_xticks(range(n))` then `ax.set_xticklabels(labels)`); cell {wrong} "
                       f"is labelled {shown[wrong]!r}",
                       expected=_short(labels), got=_short(shown))


def _short(labels: list) -> str:
    text = repr([None if x is None else str(x) for x in labels])
    return text if len(text) < 200 else text[:197] + "..."
