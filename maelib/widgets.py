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
from dataclasses import dataclass

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from .masking import CurriculumSchedule, MaskSpec, block_bbox_shape
from .patches import check_images, check_number, check_seed, grid_size
from .viz import (
    draw_patch_grid,
    masked_image,
    new_figure,
    plot_curriculum,
    plot_mask_overlay,
    plot_patch_grid,
    to_chw,
    to_hwc,
)

# --- compute and plot: mask, patch-grid and curriculum states ----------------------------------------------
STATIC_CAPTION = "Static preview: run the notebook to use the controls"
_FLIPPED = "; flipped: array row 0 is the bottom, so it sits at the top of the array"


@dataclass(frozen=True)
class MaskState:
    """A computed mask: ``mask`` `(gh, gw)` bool (1 = masked), ``masked_image`` `(3, H, W)` with masked
    patches grey, the counts, a figure ``title`` and an explanatory ``message``; ``error`` when the settings
    are not allowed (then nothing is masked)."""

    image: torch.Tensor
    mask: torch.Tensor
    patch_size: int
    masked_image: torch.Tensor
    num_visible: int
    num_masked: int
    title: str
    message: str = ""
    error: str | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def num_patches(self) -> int:
        return self.mask.numel()

    @property
    def label(self) -> str:
        shown = "-" if self.error else str(self.num_visible)
        return f"visible patches: {shown} / {self.num_patches}"


def _image(image, name: str = "image") -> torch.Tensor:
    """``image`` as `(C, H, W)` (:func:`maelib.viz.to_chw`), finite and in [0, 1]; ValueError naming it."""
    x = to_chw(image, name)
    check_images(x[None], name, finite=True, unit_range=True, range_tol=1e-3,
                 hint=" (for 0-255 images pass image / 255)")
    return x


def _int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number (an int, or a float such as 20.0 from a slider) in ``low .. high``; TypeError /
    ValueError naming ``name`` otherwise (never a bare ``int()`` error)."""
    v = check_number(value, name, low=low, high=high)
    if not float(v).is_integer():
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    return int(v)


def _state(x: torch.Tensor, mask: torch.Tensor, p: int, title: str, message: str = "",
           error: str | None = None) -> MaskState:
    n = int(mask.sum())
    return MaskState(x, mask, p, masked_image(x, mask, p), mask.numel() - n, n, title, message, error)


def _describe(mode: str, grid: tuple[int, int], n_masked: int, o: dict) -> tuple[str, str]:
    gh, gw = grid
    length = gh * gw
    where = " at a random height" if o.get("random_offset") else " at the bottom of the facade"
    flip = _FLIPPED if o.get("flipped") else ""
    if mode == "random":
        r = o["mask_ratio"]
        keep = length - n_masked
        return (f"random {r:.2f}",
                f"keep int(L * (1 - {r:.2f})) = int({length} * {1 - r:.2f}) = {keep} patches of lowest "
                f"noise, mask the other {n_masked}")
    b = o["block_ratio"]
    if mode == "block":
        return (f"row band {b:.2f}",
                f"band of round({b:.2f} * {gh}) = {n_masked // gw} full rows{where}{flip}")
    bh, bw = block_bbox_shape(grid, b)
    col = "a random column" if o.get("horizontal_random_offset") else "centred"
    if mode == "block_bbox":
        return (f"square block {b:.2f}", f"block of {bh} x {bw} = {bh * bw} patches (about {b:.2f} * {length}"
                f" = {b * length:.1f}), {col},{where}{flip}")
    r = o["random_ratio"]
    return (f"combined {b:.2f} + {r:.2f}",
            f"total = block + random = {b:.2f} + {r:.2f} = {b + r:.2f}, so L - int(L * (1 - {b + r:.2f})) = "
            f"{n_masked} patches are masked: {bh * bw} in the {bh} x {bw} block ({col},{where}) and "
            f"{n_masked - bh * bw} at random outside it{flip}")


def mask_state(image, patch_size: int, mask_mode: str, *, seed: int = 0, **options) -> MaskState:
    """Mask one image with the setting of ``mask_mode`` and ``options`` (:meth:`MaskSpec.draw`).

    Args:
        image: `(3, H, W)` in [0, 1].
        patch_size: p (divides H and W).
        mask_mode: ``"random"``, ``"block"``, ``"block_bbox"`` or ``"combined"``.
        seed: seeds the generator that draws noise and offsets.
        options: the strategy's options (``mask_ratio``, ``block_ratio``, ``random_ratio``, ``flipped``, ...).
    Returns:
        :class:`MaskState`; for ``combined`` with block + random >= 1 an error state instead of an exception.
    """
    x = _image(image)
    grid = grid_size(tuple(x.shape[-2:]), patch_size)
    seed = check_seed(seed)
    b, r = options.get("block_ratio", 0.5), options.get("random_ratio", 0.0)
    for name in ("block_ratio", "random_ratio"):
        check_number(options.get(name, 0.0), name, low=0.0, high=1.0, high_open=True)
    if mask_mode == "combined" and b + r >= 1:
        err = (f"block ratio + random ratio must be < 1, got {b:.2f} + {r:.2f} = {b + r:.2f}"
               ": lower one of them")
        return _state(x, torch.zeros(grid, dtype=torch.bool), patch_size, "not allowed: block + random >= 1",
                      error=err)
    spec = MaskSpec.from_options(mask_mode, **options)
    mask, _ = spec.draw(1, grid, torch.Generator().manual_seed(int(seed)))
    mask = mask[0].reshape(grid)
    title, message = _describe(mask_mode, grid, int(mask.sum()), options)
    return _state(x, mask, patch_size, title, message)


def random_mask_state(image, patch_size: int = 16, mask_ratio: float = 0.75, seed: int = 0) -> MaskState:
    """Random masking of ``mask_ratio`` of the patches (see :func:`mask_state`)."""
    return mask_state(image, patch_size, "random", seed=seed, mask_ratio=mask_ratio)


def block_mask_state(image, patch_size: int = 16, block_ratio: float = 0.5, flipped: bool = False,
                     random_offset: bool = False, seed: int = 0) -> MaskState:
    """A band of full rows (see :func:`maelib.masking.block_mask`)."""
    return mask_state(image, patch_size, "block", seed=seed, block_ratio=block_ratio, flipped=flipped,
                      random_offset=random_offset)


def block_bbox_mask_state(image, patch_size: int = 16, block_ratio: float = 0.3,
                          horizontal_random_offset: bool = False, random_offset: bool = False,
                          flipped: bool = False, seed: int = 0) -> MaskState:
    """A near-square block (see :func:`maelib.masking.block_bbox_mask`)."""
    return mask_state(image, patch_size, "block_bbox", seed=seed, block_ratio=block_ratio, flipped=flipped,
                      random_offset=random_offset, horizontal_random_offset=horizontal_random_offset)


def combined_mask_state(image, patch_size: int = 16, block_ratio: float = 0.3, random_ratio: float = 0.45,
                        flipped: bool = False, horizontal_random_offset: bool = False,
                        random_offset: bool = False, seed: int = 0) -> MaskState:
    """A square block plus random patches outside it (see :func:`maelib.masking.combined_mask`)."""
    return mask_state(image, patch_size, "combined", seed=seed, block_ratio=block_ratio,
                      random_ratio=random_ratio, flipped=flipped, random_offset=random_offset,
                      horizontal_random_offset=horizontal_random_offset)


def patch_grid_state(image, patch_size: int = 16) -> MaskState:
    """The patch grid of an image, nothing masked."""
    x = _image(image)
    gh, gw = grid_size(tuple(x.shape[-2:]), patch_size)
    p, length = patch_size, gh * gw
    msg = (f"{gh} x {gw} = {length} patches: the encoder sees {length} tokens (+1 cls token), each a "
           f"{p} * {p} * 3 = {p * p * 3}-dim vector; attention cost grows with {length}^2")
    return _state(x, torch.zeros(gh, gw, dtype=torch.bool), p, f"{gh} x {gw} patches of {p} x {p} px", msg)


def plot_mask_state(state: MaskState, fig: Figure | None = None) -> Figure:
    """The masked image with the patch grid; updates ``fig`` (from an earlier call) in place when possible."""
    key = f"mask:{state.patch_size}:{tuple(state.image.shape)}"
    axes = fig.axes if fig is not None else []
    if axes and axes[0].get_gid() == key and axes[0].images:
        ax = axes[0]
        ax.images[0].set_data(to_hwc(state.masked_image))
        ax.set_title(state.title, fontsize=9, y=1.0)
    else:
        if fig is not None:
            fig.clear()
        ax = (fig or new_figure(3.6, 3.6 * state.image.shape[-2] / state.image.shape[-1] + 0.3, None)
              ).add_axes((0.02, 0.02, 0.96, 0.88))
        plot_mask_overlay(state.image, state.mask, state.patch_size, ax=ax, title=state.title)
        ax.set_gid(key)
    ax.title.set_color("tab:red" if state.error else "black")
    return ax.figure


def plot_patch_grid_state(state: MaskState, fig: Figure | None = None, max_indices: int = 16) -> Figure:
    """The patch grid, with indices when there are at most ``max_indices`` patches; updates ``fig``."""
    shape = tuple(state.image.shape[-2:])
    axes = fig.axes if fig is not None else []
    if axes and axes[0].get_gid() == f"grid:{shape}":
        draw_patch_grid(axes[0], shape, state.patch_size, max_indices=max_indices)
        return fig
    if fig is not None:
        fig.clear()
    fig = fig if fig is not None else new_figure(3.6, 3.6 * shape[0] / shape[1] + 0.3, None)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.88))
    ax.set_gid(f"grid:{shape}")
    return plot_patch_grid(state.image, state.patch_size, ax=ax, max_indices=max_indices)


@dataclass(frozen=True)
class CurriculumState:
    """A :class:`maelib.masking.CurriculumSchedule`, or the ``error`` that its settings raised."""

    schedule: object | None
    error: str | None = None

    @property
    def message(self) -> str:
        s = self.schedule
        if s is None:
            return ""
        last = s.spec(s.total_epochs - 1)
        first = s.spec(s.warmup_epochs) if s.warmup_epochs < s.total_epochs else last
        warm = f"epochs 0-{s.warmup_epochs - 1}: {s.spec(0)}; " if s.warmup_epochs else ""
        return f"{warm}epoch {s.warmup_epochs}: {first} ... epoch {s.total_epochs - 1}: {last}"

    @property
    def label(self) -> str:
        return "schedule: not allowed" if self.error else f"schedule: {self.schedule.total_epochs} epochs"


def curriculum_state(epochs: int = 20, warmup: int = 2, block_start: float = 0.1, block_end: float = 0.5,
                     total_ratio: float = 0.75, flipped: bool = False,
                     horizontal_random_offset: bool = True) -> CurriculumState:
    """Build the schedule; settings it rejects give an error state instead of an exception."""
    epochs, warmup = _int(epochs, "epochs"), _int(warmup, "warmup")
    try:
        schedule = CurriculumSchedule(total_epochs=epochs, warmup_epochs=warmup,
                                      total_ratio=total_ratio, block_start=block_start, block_end=block_end,
                                      flipped=flipped, horizontal_random_offset=horizontal_random_offset)
        return CurriculumState(schedule)
    except ValueError as e:
        return CurriculumState(None, str(e))


def plot_curriculum_state(state: CurriculumState, fig: Figure | None = None) -> Figure:
    """Block and random ratio per epoch (see :func:`maelib.plot_curriculum`); updates ``fig``."""
    fig = fig if fig is not None else new_figure(6.0, 3.2, None)
    ax = fig.axes[0] if fig.axes else fig.add_axes((0.09, 0.15, 0.89, 0.76))
    if state.schedule is None or ax.texts:
        ax.clear()
    if state.schedule is None:
        ax.text(0.5, 0.5, state.error, ha="center", va="center", wrap=True, color="tab:red",
                transform=ax.transAxes)
        return fig
    return plot_curriculum(state.schedule, ax=ax)


# --- ipywidgets explorers ---------------------------------------------------------------------------------
class Explorer:
    """Controls, a count ``label``, a ``message``, and a figure in ``output`` redrawn on every change.

    ``controls`` maps each control's description to the widget; ``state`` / ``figure`` / ``png`` hold the
    last computed state, the figure and its PNG. ``box`` is the ipywidgets layout. Displayed, it also
    carries the PNG (``static=True``) for frontends and saved notebooks without widget support.
    """

    def __init__(self, compute: Callable, plot: Callable, params: dict[str, W.ValueWidget],
                 dpi: int = 72, static: bool = True, examples: list[dict] | None = None) -> None:
        self._compute, self._plot, self._params = compute, plot, params
        self.dpi, self.static = dpi, static
        self.examples = [dict(e) for e in examples or []]
        unknown = sorted({k for e in self.examples for k in e} - set(params))
        if unknown:
            raise ValueError(f"examples name unknown controls {unknown}; the controls are {sorted(params)}")
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

    def preview_states(self) -> list:
        """The states of the static preview: the current setting, then each of ``examples`` (applied on top
        of the current values), at most three in all."""
        settings = [self.values()] + [{**self.values(), **e} for e in self.examples]
        unique = [s for i, s in enumerate(settings) if s not in settings[:i]]
        return [self.state] + [self._compute(**s) for s in unique[1:3]]

    def static_preview(self) -> Figure:
        """One figure for views without a kernel (GitHub, nbviewer, an un-run notebook): up to three
        settings side by side, each with its count label, under the caption :data:`STATIC_CAPTION`."""
        import numpy as np

        states = self.preview_states()
        shots = []
        for st in states:
            f = self._plot(st, None)
            f.canvas.draw()
            shots.append(np.asarray(f.canvas.buffer_rgba()))
        n = len(states)
        hs, ws = [a.shape[0] / 72 for a in shots], [a.shape[1] / 72 for a in shots]
        if max(ws) > 2 * max(hs):                           # wide figures: one setting per row
            w, h = max(ws), sum(h + 0.25 for h in hs)
            fig = new_figure(w, h + 0.45, None)
            y = 1.0 - 0.45 / (h + 0.45)
            for st, a, hi in zip(states, shots, hs):
                y -= (hi + 0.25) / (h + 0.45)
                ax = fig.add_axes((0.0, y + 0.2 / (h + 0.45), 1.0, hi / (h + 0.45)))
                ax.imshow(a)
                ax.set_axis_off()
                ax.text(0.5, 0.0, st.label, transform=ax.transAxes, ha="center", va="top", fontsize=8)
        else:
            w, h = sum(ws), max(hs)
            fig = new_figure(min(w, 14.0), min(w, 14.0) / w * h + 0.75, None)
            x = 0.0
            for st, a in zip(states, shots):
                ax = fig.add_axes((x, 0.1, a.shape[1] / 72 / w, 0.72))
                x += a.shape[1] / 72 / w
                ax.imshow(a)
                ax.set_axis_off()
                ax.text(0.5, -0.02, st.label, transform=ax.transAxes, ha="center", va="top", fontsize=7)
        fig.suptitle(f"{STATIC_CAPTION} ({n} setting{'s' if n > 1 else ''} shown)", fontsize=9, y=0.98,
                     color="0.3")
        return fig

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget view, plus (``static=True``) for frontends and saved copies without widgets a PNG
        preview of up to three settings under a caption, and the caption and count as text."""
        data = dict(self.box._repr_mimebundle_())
        data["text/plain"] = self.state.label
        if self.static:
            buf = io.BytesIO()
            self.static_preview().savefig(buf, format="png", dpi=self.dpi, pil_kwargs={"compress_level": 6})
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
            data["text/plain"] = f"{STATIC_CAPTION}. {self.state.label}"
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
    x = _image(image)
    h, w = x.shape[-2:]
    sizes = [p for p in range(4, min(h, w) // 2 + 1) if h % p == 0 and w % p == 0]
    if patch_size not in sizes:
        raise ValueError(f"patch_size must divide the image size {(h, w)}: one of {sizes}, got {patch_size}")
    ctl = W.SelectionSlider(options=sizes, value=patch_size, description="patch size",
                            continuous_update=False, **_STYLE)
    others = [p for p in (sizes[0], sizes[-1]) if p != patch_size]
    return Explorer(lambda patch_size: patch_grid_state(x, patch_size), plot_patch_grid_state,
                    {"patch_size": ctl}, static=static, examples=[{"patch_size": p} for p in others])


def _mask_widget(image, patch_size: int, mode: str, params: dict, static: bool,
                 examples: list[dict]) -> Explorer:
    x = _image(image)
    grid_size(tuple(x.shape[-2:]), patch_size)
    return Explorer(lambda **kw: mask_state(x, patch_size, mode, **kw), plot_mask_state, params,
                    static=static, examples=examples)


def random_mask_widget(image, patch_size: int = 16, mask_ratio: float = 0.75, seed: int = 0,
                       static: bool = True) -> Explorer:
    """Random masking: mask ratio and seed."""
    params = {"mask_ratio": _slider("mask ratio", mask_ratio), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "random", params, static,
                        [{"mask_ratio": 0.5}, {"mask_ratio": 0.9, "seed": 1}])


def block_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.5, flipped: bool = False,
                      random_offset: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Row-band masking: block ratio, flipped, random offset, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio), "flipped": _check("flipped", flipped),
              "random_offset": _check("random offset", random_offset), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "block", params, static,
                        [{"flipped": not flipped}, {"random_offset": True, "block_ratio": 0.3, "seed": 1}])


def block_bbox_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.3,
                           horizontal_random_offset: bool = False, random_offset: bool = False,
                           flipped: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Square-block masking: block ratio, horizontal offset, random offset, flipped, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio),
              "horizontal_random_offset": _check("horizontal offset", horizontal_random_offset),
              "random_offset": _check("random offset", random_offset), "flipped": _check("flipped", flipped),
              "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "block_bbox", params, static,
                        [{"block_ratio": 0.1, "horizontal_random_offset": True, "seed": 1},
                         {"block_ratio": 0.5, "random_offset": True, "seed": 2}])


def combined_mask_widget(image, patch_size: int = 16, block_ratio: float = 0.3, random_ratio: float = 0.45,
                         flipped: bool = False, horizontal_random_offset: bool = False,
                         random_offset: bool = False, seed: int = 0, static: bool = True) -> Explorer:
    """Combined masking: block ratio + random ratio (their sum must stay below 1), flags, seed."""
    params = {"block_ratio": _slider("block ratio", block_ratio),
              "random_ratio": _slider("random ratio", random_ratio), "flipped": _check("flipped", flipped),
              "horizontal_random_offset": _check("horizontal offset", horizontal_random_offset),
              "random_offset": _check("random offset", random_offset), "seed": _seed(seed)}
    return _mask_widget(image, patch_size, "combined", params, static,
                        [{"block_ratio": 0.1, "random_ratio": 0.65},
                         {"block_ratio": 0.5, "random_ratio": 0.25}])


def curriculum_widget(epochs: int = 20, warmup: int = 2, block_start: float = 0.1, block_end: float = 0.5,
                      total_ratio: float = 0.75, static: bool = True) -> Explorer:
    """The fine-tuning curriculum: epochs, warm-up, block start and end."""
    params = {"epochs": _slider("epochs", int(epochs), 1, 100, 1),
              "warmup": _slider("warmup", int(warmup), 0, 50, 1),
              "block_start": _slider("block start", block_start, 0.0, total_ratio),
              "block_end": _slider("block end", block_end, 0.0, total_ratio)}
    return Explorer(lambda **kw: curriculum_state(total_ratio=total_ratio, **kw), plot_curriculum_state,
                    params, static=static, examples=[{"warmup": 0, "block_end": 0.3},
                                                     {"block_start": 0.3, "block_end": 0.7}])


# --- the model-driven explorer: MAE against Telea on one test facade ---------------------------------------
INPAINT_MODES = ("random", "block", "block_bbox")


@dataclass(frozen=True)
class InpaintState:
    """One inpainting comparison: the facade ``image`` `(3, H, W)`, the ``mask`` `(gh, gw)` (1 = masked),
    the masked input, the MAE's and Telea's pasted results `(3, H, W)` and their masked PSNRs in dB."""

    image: torch.Tensor
    mask: torch.Tensor
    patch_size: int
    masked_image: torch.Tensor
    mae: torch.Tensor
    telea: torch.Tensor
    mae_psnr: float
    telea_psnr: float
    title: str
    error: str | None = None

    @property
    def num_masked(self) -> int:
        return int(self.mask.sum())

    @property
    def num_visible(self) -> int:
        return self.mask.numel() - self.num_masked

    @property
    def winner(self) -> str:
        return "MAE" if self.mae_psnr > self.telea_psnr else "Telea"

    @property
    def label(self) -> str:
        return (f"visible patches: {self.num_visible} / {self.mask.numel()} | masked PSNR: "
                f"MAE {self.mae_psnr:.2f} dB, Telea {self.telea_psnr:.2f} dB")

    @property
    def message(self) -> str:
        gap = self.mae_psnr - self.telea_psnr
        return (f"{self.title}: the MAE is {abs(gap):.2f} dB {'above' if gap > 0 else 'below'} Telea on this "
                "facade (PSNR over the masked pixels only; higher is closer to the photo)")


def inpaint_state(model, images: torch.Tensor, index: int = 0, mask_mode: str = "random",
                  ratio: float = 0.75, seed: int = 0) -> InpaintState:
    """Mask one facade, fill it with the MAE and with OpenCV's Telea, score both on the masked pixels.

    Args:
        model: a :class:`maelib.model.MaskedAutoencoderViT`.
        images: `(N, 3, H, W)` in [0, 1] (resized to the model by :func:`maelib.inference.reconstruct`).
        index: which image.
        mask_mode: ``"random"`` (``ratio`` = mask ratio), ``"block"`` (a row band) or ``"block_bbox"``
            (a square block); ``ratio`` is the block ratio for the last two.
        ratio: in [0, 0.95].
        seed: seeds the mask's generator.
    Returns:
        :class:`InpaintState`.
    """
    from .baselines import inpaint_telea
    from .inference import reconstruct
    from .metrics import masked_psnr

    if mask_mode not in INPAINT_MODES:
        raise ValueError(f"mask_mode must be one of {INPAINT_MODES}, got {mask_mode!r}")
    ratio = check_number(ratio, "ratio", low=0.0, high=0.95)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, 3, H, W), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    index, seed = _int(index, "index", 0, len(images) - 1), check_seed(seed)
    key = "mask_ratio" if mask_mode == "random" else "block_ratio"
    try:
        r = reconstruct(model, images[index][None], mask_mode,
                        generator=torch.Generator().manual_seed(seed), **{key: ratio})
    except ValueError as err:  # a ratio of 0, or one too small to cover a patch: nothing is masked
        if " masks 0 of " not in str(err):
            raise
        r = reconstruct(model, images[index][None], "random", generator=torch.Generator().manual_seed(seed),
                        mask_ratio=0.0)
    if not bool(r.mask.any()):
        m = torch.zeros(model.grid_size, dtype=torch.bool)
        return InpaintState(r.images[0], m, model.patch_size, r.images[0], r.images[0], r.images[0],
                            float("inf"), float("inf"), "nothing masked",
                            "raise the ratio: nothing is masked")
    telea = inpaint_telea(r.images, r.pixel_mask)
    scores = masked_psnr(torch.cat([r.pasted, telea]), r.images.expand(2, -1, -1, -1),
                         r.pixel_mask.expand(2, -1, -1, -1))
    names = {"random": "random", "block": "row band", "block_bbox": "square block"}
    mask = r.mask[0].reshape(model.grid_size)
    shown = masked_image(r.images[0], mask, model.patch_size)
    return InpaintState(r.images[0], mask, model.patch_size, shown, r.pasted[0], telea[0], float(scores[0]),
                        float(scores[1]),
                        f"image {index}, {names[mask_mode]} {ratio:.2f}")


def plot_inpaint_state(state: InpaintState, fig: Figure | None = None) -> Figure:
    """Masked input, MAE and Telea side by side with their masked PSNRs; updates ``fig`` in place."""
    panels = [(state.masked_image, f"input: {state.num_masked} patches masked"),
              (state.mae, f"MAE: {state.mae_psnr:.2f} dB"),
              (state.telea, f"Telea: {state.telea_psnr:.2f} dB"),
              (state.image, "original")]
    key = f"inpaint:{tuple(state.image.shape)}"
    axes = fig.axes if fig is not None else []
    if len(axes) == 4 and axes[0].get_gid() == key:
        for ax, (img, title) in zip(axes, panels):
            ax.images[0].set_data(to_hwc(img))
            ax.set_title(title, fontsize=9, y=1.0)
    else:
        if fig is not None:
            fig.clear()
        h, w = state.image.shape[-2:]
        fig = fig if fig is not None else new_figure(8.4, 2.1 * h / w + 0.35, None)
        for i, (img, title) in enumerate(panels):
            ax = fig.add_axes((0.005 + i * 0.25, 0.02, 0.24, 0.84))
            ax.imshow(to_hwc(img), interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(title, fontsize=9, y=1.0)
            ax.set_gid(key)
    win = 1 if state.mae_psnr > state.telea_psnr else 2
    for i, ax in enumerate(fig.axes):
        ax.title.set_color("tab:green" if i == win and not state.error else "black")
    return fig


def inpainting_widget(model, images: torch.Tensor, index: int = 0, mask_mode: str = "random",
                      ratio: float = 0.75, seed: int = 0, static: bool = True) -> Explorer:
    """The bundled (or any) MAE against Telea, live: facade, mask mode, ratio, seed.

    Args: model; images `(N, 3, H, W)` in [0, 1]; the initial control values (see :func:`inpaint_state`).
    Returns: an :class:`Explorer` whose static preview shows three settings.
    """
    images = images.detach().cpu().float()
    params = {"index": _slider("facade", int(index), 0, len(images) - 1, 1),
              "mask_mode": W.Dropdown(options=list(INPAINT_MODES), value=mask_mode, description="mask mode",
                                      **_STYLE),
              "ratio": _slider("mask ratio", float(ratio), 0.05, 0.95, 0.05), "seed": _seed(seed)}
    examples = [dict(mask_mode="random", ratio=0.75), dict(mask_mode="block", ratio=0.5),
                dict(mask_mode="block_bbox", ratio=0.3)]
    return Explorer(lambda **kw: inpaint_state(model, images, **kw), plot_inpaint_state, params,
                    static=static, examples=examples)
