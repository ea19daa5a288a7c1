"""Interactive explorers of patches, masking strategies and the curriculum.

Per strategy: a pure compute function (``*_state``) built on :mod:`maelib.masking`, a plot function that
returns a Figure (and updates one in place when given), and a thin ipywidgets factory (``*_widget``) returning
an :class:`Explorer`. An explorer's output carries a PNG of its figure next to the widget view, so frontends
that do not render widgets (and notebooks saved without widget state) show the figure instead.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import ipywidgets as W

from . import viz
from .patches import grid_size
from .widget_states import (  # noqa: F401  (re-exported: part of this module's API)
    _FLIPPED,
    CurriculumState,
    MaskState,
    _describe,
    _state,
    block_bbox_mask_state,
    block_mask_state,
    combined_mask_state,
    curriculum_state,
    mask_state,
    patch_grid_state,
    plot_curriculum_state,
    plot_mask_state,
    plot_patch_grid_state,
    random_mask_state,
)


class Explorer:
    """Controls, a count ``label``, a ``message``, and a figure in ``output`` redrawn on every change.

    ``controls`` maps each control's description to the widget; ``state`` / ``figure`` / ``png`` hold the
    last computed state, the figure and its PNG. ``box`` is the ipywidgets layout. Displayed, it also
    carries the PNG (``static=True``) for frontends and saved notebooks without widget support.
    """

    def __init__(self, compute: Callable, plot: Callable, params: dict[str, W.ValueWidget],
                 dpi: int = 72, static: bool = True) -> None:
        self._compute, self._plot, self._params = compute, plot, params
        self.dpi, self.static = dpi, static
        self.controls = {w.description: w for w in params.values()}
        self.label, self.message, self.output = W.Label(), W.HTML(), W.Output()
        self.box = W.VBox([*self.controls.values(), self.label, self.message, self.output])
        self.state, self.figure, self.png = None, None, b""
        for w in params.values():
            w.observe(self._on_change, names="value")
        self.update()

    def values(self) -> dict:
        """The compute function's keyword arguments, read from the controls."""
        return {k: w.value for k, w in self._params.items()}

    def update(self):
        """Recompute, redraw the figure (in place), refresh label, message and output. Returns: the state."""
        self.state = self._compute(**self.values())
        self.figure = self._plot(self.state, self.figure)
        self.label.value = self.state.label
        err = self.state.error
        text = html.escape(err or self.state.message)
        self.message.value = f"<span style='color:#c00'>{text}</span>" if err else text
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi, pil_kwargs={"compress_level": 1})
        self.png = buf.getvalue()
        data = {"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": self.state.label}
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)
        return self.state

    def _on_change(self, change) -> None:
        self.update()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget view plus a PNG of the figure for frontends (and saved copies) without widgets."""
        data = dict(self.box._repr_mimebundle_())
        data["text/plain"] = self.state.label
        if self.static:
            data["image/png"] = base64.b64encode(self.png).decode("ascii")
        return data

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)


_STYLE = {"style": {"description_width": "initial"}, "layout": {"width": "380px"}}


def _slider(description: str, value: float, lo: float = 0.0, hi: float = 0.95, step: float = 0.05):
    cls = W.IntSlider if isinstance(value, int) and not isinstance(value, bool) else W.FloatSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
               **_STYLE)


def _check(description: str, value: bool) -> W.Checkbox:
    return W.Checkbox(value=bool(value), description=description, indent=False)


def _seed(value: int) -> W.IntSlider:
    return _slider("seed", int(value), 0, 99, 1)


def patch_size_widget(image, patch_size: int = 16, static: bool = True) -> Explorer:
    """Patch size -> patch grid; the sizes offered divide the image's height and width."""
    x = viz.to_chw(image)
    h, w = x.shape[-2:]
    sizes = [p for p in range(4, min(h, w) // 2 + 1) if h % p == 0 and w % p == 0]
    if patch_size not in sizes:
        raise ValueError(f"patch_size must divide the image size {(h, w)}: one of {sizes}, got {patch_size}")
    ctl = W.SelectionSlider(options=sizes, value=patch_size, description="patch size",
                            continuous_update=False, **_STYLE)
    return Explorer(lambda patch_size: patch_grid_state(x, patch_size), plot_patch_grid_state,
                    {"patch_size": ctl}, static=static)


def _mask_widget(image, patch_size: int, mode: str, params: dict, static: bool) -> Explorer:
    x = viz.to_chw(image)
    grid_size(tuple(x.shape[-2:]), patch_size)
    return Explorer(lambda **kw: mask_state(x, patch_size, mode, **kw), plot_mask_state, params,
                    static=static)


def random_mask_widget(image, patch_size: int = 16, mask_ratio: float = 0.75, seed: int = 0,
                       static: bool = True) -> Explorer:
    """Random masking: mask ratio and seed."""
    params = {"mask_ratio": _slider("mask ratio", mask_ratio), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "random", params, static)


def block_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.5, flipped: bool = False,
                      random_offset: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Row-band masking: block ratio, flipped, random offset, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio), "flipped": _check("flipped", flipped),
              "random_offset": _check("random offset", random_offset), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "block", params, static)


def block_bbox_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.3,
                           horizontal_random_offset: bool = False, random_offset: bool = False,
                           flipped: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Square-block masking: block ratio, horizontal offset, random offset, flipped, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio),
              "horizontal_random_offset": _check("horizontal offset", horizontal_random_offset),
              "random_offset": _check("random offset", random_offset), "flipped": _check("flipped", flipped),
              "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "block_bbox", params, static)


def combined_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.3, random_ratio: float = 0.45,
                         flipped: bool = False, horizontal_random_offset: bool = False,
                         random_offset: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Combined masking: block ratio + random ratio (their sum must stay below 1), flags, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio),
              "random_ratio": _slider("random ratio", random_ratio), "flipped": _check("flipped", flipped),
              "horizontal_random_offset": _check("horizontal offset", horizontal_random_offset),
              "random_offset": _check("random offset", random_offset), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "combined", params, static)


def curriculum_widget(epochs: int = 20, warmup: int = 2, block_start: float = 0.1, block_end: float = 0.5,
                      total_ratio: float = 0.75, static: bool = True) -> Explorer:
    """The fine-tuning curriculum: epochs, warm-up, block start and end."""
    params = {"epochs": _slider("epochs", int(epochs), 1, 100, 1),
              "warmup": _slider("warmup", int(warmup), 0, 50, 1),
              "block_start": _slider("block start", block_start, 0.0, total_ratio),
              "block_end": _slider("block end", block_end, 0.0, total_ratio)}
    return Explorer(lambda **kw: curriculum_state(total_ratio=total_ratio, **kw), plot_curriculum_state,
                    params, static=static)
