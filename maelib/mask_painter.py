"""Paint the mask yourself: a patch brush, a box and an eraser over your photo, with MAE and nearest-patch
previews redrawn after every stroke and the full-resolution fills (MAE, Telea, nearest) on "apply".

As the other widgets: pure compute (:func:`stroke_cells`, :func:`box_cells`, :func:`paint`,
:func:`paint_state`, :func:`score_fills`), a plot function (:func:`plot_paint_state`) and a thin factory
(:func:`mask_painter_widget`) whose mouse events come from ``ipyevents`` on an ipywidgets ``Image``.
A painted mask is a boolean grid of the model's patches `(gh, gw)` (True = masked): one cell is the photo
region whose pixel centres fall in that model patch (:func:`maelib.inpainting.patch_index_map`).
"""

from __future__ import annotations

import base64
import html
import io
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from .inpainting import (
    COMPARE_METHODS,
    DEFAULT_POLICY,
    Inpainting,
    Photo,
    PhotoNotice,
    Placement,
    cells_to_photo_mask,
    inpaint,
    patch_index_map,
    placement,
    plot_comparison,
    read_photo,
    resolve_model,
)
from .viz import new_figure

DISPLAY_LONG_SIDE = 512
TOOLS = ("brush", "box", "erase")
MODES = ("hide a clean region", "remove a real occluder")
STATIC_CAPTION = "Static preview: run the notebook to paint"
TINT = np.array([230, 40, 40], dtype=np.float32)
NO_SCORE = ("No score: what the occluder hides was never photographed, so there is no ground truth to "
            "compare with. Look instead at whether lines (floors, window rows, edges) continue through the "
            "filled region, whether its texture and colour match the surroundings, and whether a seam shows "
            "at the mask's border.")


# --- compute ------------------------------------------------------------------------------------------------
def display_pixels(pixels: np.ndarray, long_side: int = DISPLAY_LONG_SIDE) -> np.ndarray:
    """The photo at display resolution: long side at most ``long_side`` (antialiased). Returns `(h, w, 3)`."""
    h, w = pixels.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return np.array(pixels)  # a copy: painting never touches the caller's array
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.array(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def cell_at(place: Placement, size: tuple[int, int], x: float, y: float) -> tuple[int, int] | None:
    """The patch `(row, col)` of display pixel ``(x, y)`` of an image of ``size`` `(h, w)`; None outside."""
    h, w = size
    if not (0 <= x < w and 0 <= y < h):
        return None
    rows, cols = patch_index_map(size, place)
    return int(rows[int(y)]), int(cols[int(x)])


def stroke_cells(place: Placement, size: tuple[int, int], points: Sequence[tuple[float, float]],
                 step: float = 2.0) -> list[tuple[int, int]]:
    """The patches a brush stroke through ``points`` `[(x, y), ...]` (display pixels) passes over, in order,
    each once; the path between points is sampled every ``step`` px."""
    out: dict[tuple[int, int], None] = {}
    pts = [(float(x), float(y)) for x, y in points]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] or pts):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) / step))
        for t in np.linspace(0.0, 1.0, n + 1):
            c = cell_at(place, size, x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            if c is not None:
                out[c] = None
    return list(out)


def box_cells(place: Placement, size: tuple[int, int], x0: float, y0: float, x1: float,
              y1: float) -> list[tuple[int, int]]:
    """The patches with a pixel centre inside the box between corners ``(x0, y0)`` and ``(x1, y1)``
    (display pixels, any order, clipped to the image)."""
    h, w = size
    xa, xb = sorted((int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 0, w - 1))))
    ya, yb = sorted((int(np.clip(y0, 0, h - 1)), int(np.clip(y1, 0, h - 1))))
    rows, cols = patch_index_map(size, place)
    return [(int(r), int(c)) for r in np.unique(rows[ya:yb + 1]) for c in np.unique(cols[xa:xb + 1])]


def paint(cells: np.ndarray, coords: Iterable[tuple[int, int]], value: bool = True) -> np.ndarray:
    """A copy of ``cells`` `(gh, gw)` with each patch ``(row, col)`` of ``coords`` set to ``value``."""
    out = np.array(cells, dtype=bool)
    gh, gw = out.shape
    for r, c in coords:
        if not (0 <= r < gh and 0 <= c < gw):
            raise ValueError(f"coords must be patches (row, col) of the {gh} x {gw} grid, got {(r, c)}")
        out[r, c] = value
    return out


def tint(pixels: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The photo with the masked pixels tinted red. Args: `(h, w, 3)` uint8, `(h, w)` bool."""
    out = pixels.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * TINT
    return out.round().astype(np.uint8)


@dataclass(frozen=True)
class PaintState:
    """A painted mask and its previews at display resolution.

    ``photo`` `(h, w, 3)` uint8; ``cells`` `(gh, gw)` bool (True = masked); ``mask`` `(h, w)` bool; ``masked``
    (the photo with the mask tinted), ``mae`` and ``nearest`` `(h, w, 3)` uint8 (visible pixels are the
    photo's); ``seconds`` of the two fills; ``error`` when the mask cannot be filled (then the fills are the
    photo).
    """

    photo: np.ndarray
    cells: np.ndarray
    mask: np.ndarray
    masked: np.ndarray
    mae: np.ndarray
    nearest: np.ndarray
    seconds: float
    error: str | None = None

    @property
    def num_masked(self) -> int:
        return int(self.cells.sum())

    @property
    def label(self) -> str:
        return f"masked patches: {self.num_masked} / {self.cells.size}"

    @property
    def message(self) -> str:
        if self.error:
            return self.error
        if not self.num_masked:
            return "paint over the photo to mask patches"
        return (f"{100 * self.mask.mean():.1f} % of the photo masked; MAE and nearest-patch previews at "
                f"{self.photo.shape[1]} x {self.photo.shape[0]} px in {1000 * self.seconds:.0f} ms")


def paint_state(model, photo: np.ndarray, cells: np.ndarray | None = None,
                policy: str = DEFAULT_POLICY) -> PaintState:
    """Fill the painted patches of a display-resolution photo with the MAE and the nearest visible patch.

    Args:
        model: a model (or bundled name / path, see :func:`maelib.inpainting.resolve_model`).
        photo: `(h, w, 3)` uint8 (see :func:`display_pixels`).
        cells: `(gh, gw)` bool, True = masked (default: nothing masked).
        policy: placement policy of :func:`maelib.inpainting.placement`.
    Returns:
        :class:`PaintState`.
    """
    net, _ = resolve_model(model)
    size = photo.shape[:2]
    place = placement(size, net.config.img_size, net.patch_size, policy)
    cells = np.zeros(place.grid, dtype=bool) if cells is None else np.asarray(cells, dtype=bool)
    if cells.shape != place.grid:
        raise ValueError(f"cells must have the model's patch grid {place.grid}, got {cells.shape}")
    mask = cells_to_photo_mask(cells, size, place)
    masked = tint(photo, mask)
    if not mask.any():
        return PaintState(photo, cells, mask, masked, photo, photo, 0.0)
    t0 = time.perf_counter()
    try:
        fills = {m: inpaint(Photo(photo), mask, net, m, policy=policy).result for m in ("mae", "nearest")}
    except ValueError as err:
        return PaintState(photo, cells, mask, masked, photo, photo, 0.0, f"{err}")
    return PaintState(photo, cells, mask, masked, fills["mae"], fills["nearest"], time.perf_counter() - t0)


def score_fills(photo: np.ndarray, results: dict[str, Inpainting],
                lpips=None) -> dict[str, dict[str, float]]:
    """Masked PSNR (dB) and LPIPS of each fill against the photo (the hidden region's ground truth).

    Args: photo `(H, W, 3)` uint8; results: method -> :class:`Inpainting` of that photo; lpips: a
    :class:`maelib.metrics.LPIPSMetric` (None or unavailable: LPIPS is NaN). Returns: method -> scores.
    """
    from .metrics import masked_psnr

    target = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float() / 255.0
    out = {}
    for name, r in results.items():
        pred = torch.from_numpy(np.ascontiguousarray(r.result)).permute(2, 0, 1)[None].float() / 255.0
        m = torch.from_numpy(r.mask)[None, None]
        score = {"masked_psnr": float(masked_psnr(pred, target, m)[0]), "lpips": float("nan")}
        if lpips is not None and lpips.available:
            score["lpips"] = float(lpips(pred, target)[0])
        out[name] = score
    return out


# --- plot ---------------------------------------------------------------------------------------------------
def plot_paint_state(state: PaintState, fig: Figure | None = None) -> Figure:
    """The photo with the painted mask, the MAE's and the nearest patch's previews; updates ``fig``."""
    panels = [(state.masked, f"painted: {state.label}"), (state.mae, "MAE"), (state.nearest, "nearest patch")]
    key = f"paint:{state.photo.shape}"
    axes = fig.axes if fig is not None else []
    if len(axes) == 3 and axes[0].get_gid() == key:
        for ax, (img, title) in zip(axes, panels):
            ax.images[0].set_data(img)
            ax.set_title(title, fontsize=9)
        return fig
    if fig is not None:
        fig.clear()
    h, w = state.photo.shape[:2]
    fig = fig if fig is not None else new_figure(9.0, 3.0 * h / w + 0.4, None)
    for i, (img, title) in enumerate(panels):
        ax = fig.add_axes((i / 3 + 0.005, 0.02, 1 / 3 - 0.01, 0.86))
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
        ax.set_gid(key)
    return fig


def png_bytes(pixels: np.ndarray) -> bytes:
    """`(h, w, 3)` uint8 -> PNG bytes (fast compression, for live previews)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --- the widget ---------------------------------------------------------------------------------------------
class MaskPainter:
    """The painting widget: upload, tool (brush / box / erase), clear, mode, apply; three image panels.

    ``state`` is the last :class:`PaintState`; ``results`` the full-resolution :class:`Inpainting` of each
    method after :meth:`apply`, ``scores`` their masked PSNR and LPIPS in the "hide a clean region" mode.
    """

    def __init__(self, model, photo: Photo, policy: str = DEFAULT_POLICY, long_side: int = DISPLAY_LONG_SIDE,
                 static: bool = True, name: str = "photo") -> None:
        import ipywidgets as W
        from ipyevents import Event

        self.model, _ = resolve_model(model)
        self.policy, self.long_side, self.static = policy, int(long_side), static
        self.results: dict[str, Inpainting] = {}
        self.scores: dict[str, dict[str, float]] = {}
        self._stroke: list[tuple[float, float]] = []
        self._box_start: tuple[float, float] | None = None
        self._lpips = None
        lay = {"style": {"description_width": "initial"}}
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload a photo")
        self.upload.add_class("maelib-paint-upload")
        self.tool = W.ToggleButtons(options=list(TOOLS), value="brush", description="tool", **lay)
        self.mode = W.ToggleButtons(options=list(MODES), value=MODES[0], description="mode", **lay)
        self.clear_button = W.Button(description="clear")
        self.apply_button = W.Button(description="apply", button_style="primary")
        self.label, self.message, self.output = W.Label(), W.HTML(), W.Output()
        self.label.add_class("maelib-paint-count")
        self.images = {k: W.Image(format="png") for k in ("input", "mae", "nearest")}
        titles = {"input": "paint here", "mae": "MAE", "nearest": "nearest patch"}
        for k, im in self.images.items():
            im.add_class(f"maelib-paint-{k}")
        # presses and releases all arrive; moves at most every 30 ms (ipyevents throttles per Event widget)
        self.events = [Event(source=self.images["input"], prevent_default_action=True,
                             watched_events=["mousedown", "mouseup", "mouseleave"]),
                       Event(source=self.images["input"], prevent_default_action=True,
                             watched_events=["mousemove"], throttle_or_debounce="throttle", wait=30)]
        for ev in self.events:
            ev.on_dom_event(self.handle_event)
        self.upload.observe(self._on_upload, names="value")
        self.clear_button.on_click(lambda _: self.clear())
        self.apply_button.on_click(lambda _: self.apply())
        panels = [W.VBox([W.HTML(f"<b>{titles[k]}</b>"), im]) for k, im in self.images.items()]
        row = W.HBox(panels, layout=W.Layout(flex_flow="row wrap"))
        self.box = W.VBox([W.HBox([self.upload, self.clear_button, self.apply_button]), self.tool, self.mode,
                           self.label, self.message, row, self.output])
        self.set_photo(photo, name)

    # -- state
    def set_photo(self, photo: Photo, name: str = "photo") -> None:
        """A new photo: display copy, no mask, notices shown."""
        self.photo, self.name = photo, name
        self.display = display_pixels(photo.pixels, self.long_side)
        size = self.display.shape[:2]
        self.place = placement(size, self.model.config.img_size, self.model.patch_size, self.policy)
        for im in self.images.values():  # never squeezed: the painted panel's pixels are the photo's
            im.layout.width = im.layout.min_width = f"{size[1]}px"
            im.layout.height = im.layout.min_height = f"{size[0]}px"
        self.results, self.scores = {}, {}
        self.output.outputs = ()
        self.cells = np.zeros(self.place.grid, dtype=bool)
        self.update()
        if photo.notices:
            self.message.value = "<br>".join(html.escape(n) for n in photo.notices)

    def update(self, previews: bool = True) -> PaintState:
        """Recompute the previews (``previews=False``: only the painted panel) and redraw the panels."""
        if previews:
            self.state = paint_state(self.model, self.display, self.cells, self.policy)
            self.images["mae"].value = png_bytes(self.state.mae)
            self.images["nearest"].value = png_bytes(self.state.nearest)
            err = self.state.error
            text = html.escape(self.state.message)
            self.message.value = f"<span style='color:#c00'>{text}</span>" if err else text
        mask = cells_to_photo_mask(self.cells, self.display.shape[:2], self.place)
        self.images["input"].value = png_bytes(tint(self.display, mask))
        self.label.value = f"masked patches: {int(self.cells.sum())} / {self.cells.size}"
        return self.state

    def paint_cells(self, coords: Iterable[tuple[int, int]], value: bool = True) -> PaintState:
        """Set patches ``(row, col)`` to masked (``value=True``) or visible, then redraw the previews."""
        self.cells = paint(self.cells, coords, value)
        return self.update()

    def clear(self) -> PaintState:
        """Unmask everything."""
        self.cells = np.zeros(self.place.grid, dtype=bool)
        return self.update()

    def apply(self, mode: str | None = None) -> dict[str, Inpainting]:
        """Fill the painted mask at the photo's full resolution with MAE, Telea and nearest patch; show them
        side by side, with masked PSNR and LPIPS in the "hide a clean region" mode.

        Args: mode: one of :data:`MODES` (default: the mode control's value).
        Returns: method -> :class:`Inpainting` (also in ``results``).
        """
        mode = self.mode.value if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        from IPython.display import Markdown, display

        if not self.cells.any():
            self.message.value = "<span style='color:#c00'>paint a mask first</span>"
            return {}
        full = self.photo.pixels
        place = placement(full.shape[:2], self.model.config.img_size, self.model.patch_size, self.policy)
        mask = cells_to_photo_mask(self.cells, full.shape[:2], place)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PhotoNotice)
            self.results = {m: inpaint(self.photo, mask, self.model, m, policy=self.policy)
                            for m in COMPARE_METHODS}
        with self.output:
            self.output.clear_output()
            display(plot_comparison(full, self.results))
            h, w = full.shape[:2]
            if mode == MODES[0]:
                from .metrics import LPIPSMetric

                self._lpips = self._lpips or LPIPSMetric("alex", warn=False)
                self.scores = score_fills(full, self.results, self._lpips)
                rows = "\n".join(f"| {m} | {s['masked_psnr']:.2f} | "
                                 + ("n/a" if s["lpips"] != s["lpips"] else f"{s['lpips']:.3f}") + " |"
                                 for m, s in self.scores.items())
                display(Markdown(f"Full resolution ({w} x {h}), ground truth = your photo:\n\n"
                                 f"| method | masked PSNR (dB) | LPIPS |\n|---|---|---|\n{rows}"))
            else:
                self.scores = {}
                display(Markdown(NO_SCORE))
        return self.results

    # -- events
    def _xy(self, event: dict) -> tuple[float, float]:
        # relativeX/Y (CSS px inside the element), scaled to the display photo. Not ipyevents' dataX/Y: it
        # reads the image's natural size, which is 0 while the painted panel reloads mid-stroke.
        if "relativeX" not in event:
            return float(event["dataX"]), float(event["dataY"])
        h, w = self.display.shape[:2]
        bw, bh = float(event.get("boundingRectWidth") or w), float(event.get("boundingRectHeight") or h)
        return float(event["relativeX"]) * w / bw, float(event["relativeY"]) * h / bh

    def handle_event(self, event: dict) -> None:
        """A mouse event of the painted panel (ipyevents' dict): brush / erase paint while the button is
        down, a box is drawn from press to release; the previews are redrawn when a stroke ends."""
        kind, (x, y) = event.get("type"), self._xy(event)
        size = self.display.shape[:2]
        if kind == "mousedown":
            self._stroke, self._box_start = [(x, y)], (x, y)
            if self.tool.value != "box":
                self._paint_stroke(previews=False)
        elif kind == "mousemove" and self._stroke and event.get("buttons", 1):
            self._stroke.append((x, y))
            if self.tool.value != "box":
                self._paint_stroke(previews=False)
        elif kind in ("mouseup", "mouseleave") and self._stroke:
            if self.tool.value == "box" and self._box_start is not None:
                self.cells = paint(self.cells, box_cells(self.place, size, *self._box_start, x, y))
            else:
                self._stroke.append((x, y))
                self._paint_stroke(previews=False)
            self._stroke, self._box_start = [], None
            self.update()

    def _paint_stroke(self, previews: bool) -> None:
        cells = stroke_cells(self.place, self.display.shape[:2], self._stroke[-2:])
        self.cells = paint(self.cells, cells, self.tool.value != "erase")
        self.update(previews)

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        f = files[-1] if isinstance(files, (tuple, list)) else next(iter(files.values()))
        name = f.get("name", "upload")
        try:
            with Image.open(io.BytesIO(bytes(f["content"]))) as im:
                photo = read_photo(im, name)
        except (ValueError, TypeError, OSError) as err:
            self.message.value = f"<span style='color:#c00'>{html.escape(str(err))}</span>"
            return
        self.set_photo(photo, name)

    # -- display
    def static_preview(self) -> Figure:
        """The painted panel and both previews, for views without a kernel."""
        fig = plot_paint_state(self.state)
        fig.suptitle(f"{STATIC_CAPTION}. {self.state.label}", fontsize=9, color="0.3")
        return fig

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        data = dict(self.box._repr_mimebundle_())
        data["text/plain"] = self.state.label
        if self.static:
            buf = io.BytesIO()
            self.static_preview().savefig(buf, format="png", dpi=72)
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
            data["text/plain"] = f"{STATIC_CAPTION}. {self.state.label}"
        return data

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)


def mask_painter_widget(model, photo, policy: str = DEFAULT_POLICY, long_side: int = DISPLAY_LONG_SIDE,
                        cells: Iterable[tuple[int, int]] = (), static: bool = True) -> MaskPainter:
    """Paint a mask over a photo and see the MAE and the nearest patch fill it.

    Args:
        model: bundled name, ``.safetensors`` path or model.
        photo: anything :func:`maelib.inpainting.read_photo` reads, or a :class:`Photo`.
        policy: placement policy; long_side: display resolution's long side (px).
        cells: patches `(row, col)` masked from the start.
    Returns:
        a :class:`MaskPainter` (display it).
    """
    pic = photo if isinstance(photo, Photo) else read_photo(photo)
    painter = MaskPainter(model, pic, policy, long_side, static)
    cells = list(cells)
    if cells:
        painter.paint_cells(cells)
    return painter
