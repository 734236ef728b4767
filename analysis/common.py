"""What every figure and table shares: names, colours, axes, the heatmap, the command line, saving.

Colours are the Okabe-Ito palette (distinguishable under every common colour-vision deficiency);
each sharpness-aware method shares its colour with its base optimizer, drawn solid and dashed
respectively. Heatmaps use cividis (accuracy) and viridis (gradient norms), both perceptually
uniform and colour-blind safe. Figures are built with the object-oriented API (no pyplot, no
global state), inside ``STYLE``.
"""

from __future__ import annotations

import argparse
import functools
import io
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from analysis.results import ARM, Collection, collect
from lightsam import store as files

STYLE = {
    "font.size": 14,
    "axes.titlesize": 15,
    "axes.labelsize": 14,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "figure.titlesize": 16,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text
    "savefig.bbox": "tight",
}
OKABE_ITO = {
    "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7", "black": "#000000",
}  # fmt: skip
ACCURACY_CMAP = "cividis"
GRADIENT_CMAP = "viridis"
DIVERGED_FACE = "#BBBBBB"

# Sharpness-aware methods first, then the ablation arms, then the base optimizers; BASE_OF
# pairs each sharpness-aware method with its descent's base optimizer in the figures.
ORDER = ["sgd_sam", "lightsam_i", "lightsam_ii", "lightsam_iii", "asam", "adasam",
         "lightsam_i_sgd", "sgd_sam_decay", "adagrad_norm_sam", "adagrad_sam", "adam_sam",
         "adamw_sam", "sgd", "adagrad_norm", "adagrad", "adam", "adamw"]  # fmt: skip
BASE_OF = {"sgd_sam": "sgd", "lightsam_i": "adagrad_norm", "lightsam_ii": "adagrad",
           "lightsam_iii": "adam", "asam": None, "adasam": None, "lightsam_i_sgd": "sgd",
           "sgd_sam_decay": "sgd", "adagrad_norm_sam": "adagrad_norm", "adagrad_sam": "adagrad",
           "adam_sam": "adam", "adamw_sam": "adamw"}  # fmt: skip
LABELS = {
    "sgd_sam": "SGD-SAM", "lightsam_i": "LightSAM-I", "lightsam_ii": "LightSAM-II",
    "lightsam_iii": "LightSAM-III", "asam": "ASAM", "adasam": "AdaSAM", "sgd": "SGD",
    "adagrad_norm": "AdaGrad-Norm", "adagrad": "AdaGrad", "adam": "Adam", "adamw": "AdamW",
    "lightsam_i_sgd": "LightSAM-I ascent + SGD", "sgd_sam_decay": "SGD-SAM ρ/√t",
    "adagrad_norm_sam": "SAM + AdaGrad-Norm", "adagrad_sam": "SAM + AdaGrad",
    "adam_sam": "SAM + Adam", "adamw_sam": "SAM + AdamW",
}  # fmt: skip
# A method's colour is its ascent's family: the LightSAM-I ascent and AdaGrad-Norm blue, SAM's
# around SGD vermillion, and so on; the arms are told apart from the methods by their line.
COLORS = {
    "sgd_sam": OKABE_ITO["vermillion"], "sgd": OKABE_ITO["vermillion"],
    "lightsam_i": OKABE_ITO["blue"], "adagrad_norm": OKABE_ITO["blue"],
    "lightsam_ii": OKABE_ITO["bluish green"], "adagrad": OKABE_ITO["bluish green"],
    "lightsam_iii": OKABE_ITO["reddish purple"], "adam": OKABE_ITO["reddish purple"],
    "asam": OKABE_ITO["orange"], "adasam": OKABE_ITO["sky blue"],
    "lightsam_i_sgd": OKABE_ITO["blue"], "sgd_sam_decay": OKABE_ITO["vermillion"],
    "adagrad_norm_sam": OKABE_ITO["blue"], "adagrad_sam": OKABE_ITO["bluish green"],
    "adam_sam": OKABE_ITO["reddish purple"], "adamw_sam": OKABE_ITO["yellow"],
    "adamw": OKABE_ITO["yellow"],
}  # fmt: skip
# Lines: solid for the methods, dash-dot and dotted for the arms, dashed for base optimizers.
LINESTYLES = {"lightsam_i_sgd": "-.", "sgd_sam_decay": ":", "adagrad_norm_sam": ":",
              "adagrad_sam": ":", "adam_sam": ":", "adamw_sam": ":"}  # fmt: skip
# LightSAM-II/III move each coordinate by up to rho: their radius is not SGD-SAM's.
PER_COORDINATE_RHO = {"lightsam_ii", "lightsam_iii"}


# -- names and styles -----------------------------------------------------------------------------
# Arms are named by their optimizer, and where several arms share one, by what sets them apart:
# "sgd_sam (epochs=10)" (lightsam.plan.arm_labels).


def optimizer_of(arm: str) -> str:
    """The registry name of an arm's optimizer."""
    return arm.split(" (", 1)[0]


def ordered(arms: Iterable[str]) -> list[str]:
    """The arms in the study's order of optimizers, unknown ones last, by name within each."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(set(arms), key=lambda arm: (rank.get(optimizer_of(arm), len(ORDER)), arm))


def label(arm: str) -> str:
    name = optimizer_of(arm)
    return LABELS.get(name, name) + arm[len(name) :]


def line_style(arm: str) -> dict[str, Any]:
    """Keyword arguments for ``Axes.plot``: the pair's colour, solid if sharpness-aware."""
    name = optimizer_of(arm)
    return {
        "color": COLORS.get(name, OKABE_ITO["black"]),
        "linestyle": LINESTYLES.get(name, "-" if name in BASE_OF else "--"),
        "label": label(arm),
    }


def rho_label(arm: str) -> str:
    if optimizer_of(arm) in PER_COORDINATE_RHO:
        return "ρ per coordinate"
    return "ρ (perturbation radius)"


def decade(value: float) -> str:
    """``1e-3`` for a power of ten, the shortest decimal otherwise, an en dash for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    exponent = math.log10(value) if value > 0 else math.nan
    if math.isfinite(exponent) and math.isclose(exponent, round(exponent), abs_tol=1e-9):
        return f"1e{round(exponent)}"
    return f"{value:g}"


def listed(values: pd.Series) -> str:
    """The distinct values, in order, joined: a title states every one, never just the first."""
    return " / ".join(str(v) for v in sorted(values.dropna().unique()))


def spread_over(shown: bool, spread: str) -> str:
    """What a figure's band shows, for a title: ``spread`` where there is one to show, else that
    one seed a cell has none (a band a single run cannot have is never promised)."""
    return spread if shown else "one seed a cell, no spread"


def with_rho(agg: pd.DataFrame) -> set[str]:
    """The arms with a rho grid: the sharpness-aware ones."""
    return set(agg.loc[agg["rho"].notna(), ARM])


Pair = tuple[str | None, str | None]


def _base_arm(arm: str, arms: list[str]) -> str | None:
    """The arm of ``arm``'s base optimizer: the one set apart by the same fields, or the only
    one there is."""
    name = optimizer_of(arm)
    base = BASE_OF.get(name)
    candidates = [a for a in arms if optimizer_of(a) == base]
    same = [a for a in candidates if a[len(base) :] == arm[len(name) :]] if base else []
    if same:
        return same[0]
    return candidates[0] if len(candidates) == 1 else None


def pairs(arms: Iterable[str], sharpness_aware: set[str]) -> list[Pair]:
    """(sharpness-aware arm, the arm of its base optimizer) in the study's order, either None
    when absent from the store. Figures draw a pair together, so that each method is read
    against the optimizer it adds sharpness-awareness to."""
    names = ordered(arms)
    found: list[Pair] = [(arm, _base_arm(arm, names)) for arm in names if arm in sharpness_aware]
    paired = {base for _, base in found}
    return found + [(None, a) for a in names if a not in sharpness_aware and a not in paired]


# -- axes -----------------------------------------------------------------------------------------


def log_axis(ax: Axes, axis: str = "x") -> None:
    """A log axis ticked at every decade and labelled ``1e-3``: grids here are decades."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, numticks=30))
    target.set_major_formatter(FuncFormatter(lambda v, _: decade(v)))
    target.set_minor_formatter(NullFormatter())


def category_ticks(ax: Axes, axis: str, values: Sequence[float]) -> None:
    """Label a heatmap axis (one cell per grid value) with the values."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(range(len(values))))
    target.set_major_formatter(FuncFormatter(lambda i, _: decade(values[round(i)])))


def empty_grid(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (NaN), marks (``"n/a"``) and texts (empty) of a heatmap with no cell filled in:
    a cell without a result stays blank."""
    shape = (rows, columns)
    return np.full(shape, np.nan), np.full(shape, "n/a", object), np.full(shape, "", object)


def value_range(values: pd.Series, default: tuple[float, float]) -> Normalize:
    """One colour scale over the finite ``values`` (``default`` if there are none): every panel
    of a figure shares it, so that equal colours mean equal values."""
    finite = values[np.isfinite(values)]
    return Normalize(*(default if finite.empty else (finite.min(), finite.max())))


def _text_color(rgba: Sequence[float]) -> str:
    """Black on light cells, white on dark ones (relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def heatmap(
    ax: Axes,
    values: np.ndarray,
    marks: np.ndarray,
    texts: np.ndarray,
    norm: Normalize,
    cmap: str,
) -> AxesImage:
    """Draw a (rows, cols) grid, row 0 at the bottom. ``marks``: ``""`` a coloured cell,
    ``"partial"`` coloured and outlined, ``"diverged"`` hatched grey with a cross (a result,
    never a colour of the scale), ``"n/a"`` blank. ``texts`` are printed in the cells. Returns
    the image, for a colour bar."""
    colormap: Colormap = mpl.colormaps[cmap].with_extremes(bad="white")
    shown = np.where(np.isin(marks, ["", "partial"]), values, np.nan)
    image = ax.imshow(
        np.ma.masked_invalid(shown), cmap=colormap, norm=norm, origin="lower", aspect="auto"
    )
    for (i, j), mark in np.ndenumerate(marks):
        if mark == "diverged":
            ax.add_patch(_cell(j, i, facecolor=DIVERGED_FACE, hatch="///", edgecolor="#777777"))
            ax.text(j, i, "×", ha="center", va="center", fontsize=16, color="black")
            continue
        if mark == "partial":  # black and white, visible on both ends of the scale
            ax.add_patch(_cell(j, i, fill=False, edgecolor="black", linewidth=4))
            ax.add_patch(_cell(j, i, fill=False, edgecolor="white", linewidth=1.5))
        if texts[i, j]:
            color = _text_color(colormap(norm(values[i, j]))) if mark != "n/a" else "black"
            ax.text(j, i, texts[i, j], ha="center", va="center", fontsize=9, color=color)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(True)
    return image


def _cell(x: float, y: float, **style: Any) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, linewidth=style.pop("linewidth", 0), **style)


def marker_handle(marker: str, name: str) -> Line2D:
    """A legend entry for a marker shape alone, in neutral grey."""
    return Line2D([], [], marker=marker, linestyle="", color="grey", markeredgecolor="black",
                  markersize=9, label=name)  # fmt: skip


def heatmap_legend(
    partial: bool,
    blank: bool,
    partial_label: str = "some seeds diverged (outlined)",
    blank_label: str = "n/a (not run or failed)",
) -> list[Patch]:
    """Legend entries for the kinds of cells that are not coloured by value and are present."""
    handles = [
        Patch(facecolor=DIVERGED_FACE, hatch="///", edgecolor="#777777", label="diverged (×)")
    ]
    if partial:
        handles.append(
            Patch(facecolor="white", edgecolor="black", linewidth=2.5, label=partial_label)
        )
    if blank:
        handles.append(Patch(facecolor="white", edgecolor="#777777", label=blank_label))
    return handles


# -- running a script -----------------------------------------------------------------------------


def styled(make: Callable[..., list[Path]]) -> Callable[..., list[Path]]:
    """Build a script's figures inside ``STYLE``, leaving matplotlib's global settings alone."""

    @functools.wraps(make)
    def wrapper(*args: Any, **kwargs: Any) -> list[Path]:
        with mpl.rc_context(STYLE):
            return make(*args, **kwargs)

    return wrapper


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write ``out/name.png`` (200 dpi) and ``out/name.pdf``, each whole or not at all (a
    figure the README shows is never left half-written); returns both paths."""
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    options = [{"dpi": 200}, {"metadata": {"CreationDate": None}}]  # byte-identical reruns
    for path, option in zip(paths, options, strict=True):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:], **option)
        files.write_bytes(path, buffer.getvalue())
    return paths


def parse(
    description: str, argv: Sequence[str] | None, source: str = "store"
) -> argparse.Namespace:
    """``--store DIR`` (or ``--experiment DIR``) and ``--out DIR``."""
    parser = argparse.ArgumentParser(description=description)
    helps = {"store": "the sweep's result store", "experiment": "the theorem experiment's output"}
    parser.add_argument(f"--{source}", type=Path, required=True, help=helps[source])
    parser.add_argument("--out", type=Path, required=True, help="where the outputs go")
    return parser.parse_args(argv)


def load(store: Path) -> Collection | None:
    """Read ``store`` and say what it holds and lacks; None if it holds no result yet."""
    collection = collect(store)
    print(f"{store}: {collection.summary()}")
    if collection.runs.empty:
        print(f"{store}: no results yet, nothing to plot")
        return None
    return collection


def report(paths: Iterable[Path]) -> None:
    for path in paths:
        print(f"wrote {path}")


def store_main(
    make: Callable[[Collection, Path], list[Path]], doc: str, argv: Sequence[str] | None
) -> None:
    """A store script's command line: read the store, make the outputs, say what was written."""
    args = parse(doc.splitlines()[0], argv)
    collection = load(args.store)
    if collection is not None:
        report(make(collection, args.out))
