"""reveal.js slide decks of the notebooks, viewable offline.

    python tools/slides.py notebooks/*.ipynb --out build/slides

One deck per notebook, ``<out>/<name>.slides.html``, built with nbconvert's ``SlidesExporter`` from the
cells chosen by their tags (cell metadata ``tags``):

* ``slide`` starts a new slide, ``subslide`` a vertical sub-slide, ``fragment`` appears on the current slide
  step by step, ``notes`` becomes speaker notes; ``hide-input`` shows a code cell's outputs only.
* A notebook with none of these tags gets an automatic deck: each markdown heading (its first paragraph)
  starts a slide, and each code cell with a figure adds a sub-slide with the figure alone.
* Cells tagged ``solution`` are always left out, and so are the stored verdicts of exercise checkers (they
  were computed with the solutions). Figures are embedded in the HTML.

reveal.js and KaTeX (for the formulas) come from local copies: the pinned npm packages are fetched once with
``npm pack`` into ``--assets`` (default ``build/revealjs``, an ignored folder) and referenced by a relative
path, so a deck needs no network when it is viewed. Building needs ``npm`` the first time only.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import nbformat


def _sibling(name: str):
    """A module of this folder (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_notebook_tools = _sibling("notebook_tools")
SOLUTION_TAG, has_checker_output = _notebook_tools.SOLUTION_TAG, _notebook_tools.has_checker_output

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ASSETS = ROOT / "build" / "revealjs"
DEFAULT_OUT = ROOT / "build" / "slides"
PACKAGES = {"reveal.js": "reveal.js@5.2.1", "katex": "katex@0.16.22"}
SLIDE_TAGS = ("slide", "subslide", "fragment", "notes")
HIDE_INPUT_TAG = "hide-input"
# files every deck loads, relative to the assets folder: a missing one means a broken or partial fetch
REQUIRED = ("reveal.js/dist/reveal.js", "reveal.js/dist/reveal.css", "reveal.js/dist/theme/white.css",
            "reveal.js/plugin/notes/notes.js", "katex/dist/katex.min.js", "katex/dist/katex.min.css",
            "katex/dist/contrib/auto-render.min.js")

# nbconvert's reveal template, with every remote script replaced: reveal.js and KaTeX from `assets`, no
# jQuery / RequireJS / Mermaid / MathJax / widget manager (the decks are static).
TEMPLATE = r"""{%- extends 'reveal/index.html.j2' -%}
{%- set assets = resources.offline_assets -%}
{%- block html_head_js -%}
<script src="{{ assets }}/reveal.js/dist/reveal.js"></script>
<script src="{{ assets }}/reveal.js/plugin/notes/notes.js"></script>
<link rel="stylesheet" href="{{ assets }}/katex/dist/katex.min.css">
<script src="{{ assets }}/katex/dist/katex.min.js"></script>
<script src="{{ assets }}/katex/dist/contrib/auto-render.min.js"></script>
{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{% block footer_js %}
<script>
renderMathInElement(document.body, {delimiters: [
  {left: "$$", right: "$$", display: true}, {left: "$", right: "$", display: false},
  {left: "\\(", right: "\\)", display: false}, {left: "\\[", right: "\\]", display: true}],
  throwOnError: false});
Reveal.initialize({controls: true, progress: true, history: true, slideNumber: "c/t",
                   transition: "none", width: 1280, height: 800, plugins: [RevealNotes]});
</script>
{% endblock footer_js %}
"""


class SlidesError(RuntimeError):
    """The assets cannot be fetched or a deck cannot be built; the message says what to do."""


def assets_ok(assets: Path) -> bool:
    """Whether ``assets`` holds every file a deck loads."""
    return all((Path(assets) / f).is_file() for f in REQUIRED)


def fetch_assets(assets: Path = DEFAULT_ASSETS, npm: str | None = None) -> Path:
    """Fetch the pinned reveal.js and KaTeX packages into ``assets`` (``assets/reveal.js``,
    ``assets/katex``) with ``npm pack``, unless they are there already. Returns: ``assets``.

    Raises: SlidesError when npm is missing or the fetch fails (nothing half-written is left behind).
    """
    assets = Path(assets)
    if assets_ok(assets):
        return assets
    npm = npm or shutil.which("npm")
    if npm is None:
        raise SlidesError("npm is needed once to fetch reveal.js and KaTeX into "
                          f"{assets} (install Node.js / npm, or copy the packages there by hand)")
    assets.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=assets.parent) as tmp:
        tmp = Path(tmp)
        for folder, spec in PACKAGES.items():
            proc = subprocess.run([npm, "pack", spec, "--pack-destination", str(tmp), "--silent"],
                                  capture_output=True, text=True, cwd=tmp)
            if proc.returncode != 0:
                raise SlidesError(f"npm pack {spec} failed (exit {proc.returncode}): {proc.stderr.strip()}")
            tgz = tmp / proc.stdout.strip().splitlines()[-1]
            with tarfile.open(tgz) as tar:
                tar.extractall(tmp / folder, filter="data")
            (tmp / "unpacked").mkdir(exist_ok=True)
            (tmp / folder / "package").rename(tmp / "unpacked" / folder)
        if not assets_ok(tmp / "unpacked"):
            raise SlidesError(f"the fetched packages {list(PACKAGES.values())} lack one of {REQUIRED}")
        if assets.exists():
            shutil.rmtree(assets)
        (tmp / "unpacked").rename(assets)
    return assets


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _first_paragraph(markdown: str) -> str:
    """The heading line(s) and the paragraph after them."""
    blocks = re.split(r"\n\s*\n", markdown.strip())
    return "\n\n".join(blocks[:2]) if blocks and blocks[0].lstrip().startswith("#") else blocks[0]


def _has_figure(cell) -> bool:
    return any("image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {})
               for out in cell.get("outputs", []))


def is_tagged(nb) -> bool:
    """Whether any cell of ``nb`` carries a slide tag (else the deck is built automatically)."""
    return any(t in SLIDE_TAGS for c in nb.cells for t in _tags(c))


def select_cells(nb):
    """A copy of ``nb`` holding the deck's cells only, each with its ``slideshow.slide_type``.

    Tagged notebooks: the cells with a slide tag. Others: headings (first paragraph) as slides and figure
    cells (outputs only) as sub-slides. Cells tagged ``solution`` are dropped; checker verdicts are cleared.
    """
    tagged = is_tagged(nb)
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            continue
        if tagged:
            kind = next((t for t in SLIDE_TAGS if t in tags), None)
            if kind is None:
                continue
        elif cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            kind, cell.source = "slide", _first_paragraph(cell.source)
        elif cell.cell_type == "code" and _has_figure(cell):
            kind = "subslide"
            tags.append(HIDE_INPUT_TAG)
        else:
            continue
        if cell.cell_type == "code":
            if has_checker_output(cell):
                cell.outputs = []
            cell.execution_count = None
            if HIDE_INPUT_TAG in tags:
                cell.metadata["transient"] = {"remove_source": True}    # as nbconvert's TagRemovePreprocessor
        cell.metadata["slideshow"] = {"slide_type": kind}
        cell.metadata["tags"] = tags
        cells.append(cell)
    if cells and cells[0].metadata["slideshow"]["slide_type"] != "slide":
        cells[0].metadata["slideshow"]["slide_type"] = "slide"
    out.cells = cells
    return out


def build_deck(notebook: Path, out_dir: Path = DEFAULT_OUT, assets: Path = DEFAULT_ASSETS) -> Path:
    """Write ``out_dir/<notebook stem>.slides.html``; ``assets`` (see :func:`fetch_assets`) is referenced by
    its path relative to ``out_dir``. Returns: the deck's path. Raises: SlidesError when the assets are
    missing or the notebook has no slide."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    from maelib._io import atomic_write_text

    notebook, out_dir, assets = Path(notebook), Path(out_dir), Path(assets)
    if not assets_ok(assets):
        raise SlidesError(f"reveal.js / KaTeX are not in {assets}: run fetch_assets (needs npm once)")
    nb = select_cells(nbformat.read(notebook, as_version=4))
    if not nb.cells:
        raise SlidesError(f"{notebook} gives no slide (no tagged cell, heading or figure)")
    exporter = SlidesExporter(extra_loaders=[DictLoader({"offline_slides.html.j2": TEMPLATE})],
                              template_file="offline_slides.html.j2")
    rel = Path(os.path.relpath(assets.resolve(), out_dir.resolve())).as_posix()
    exporter.reveal_url_prefix = f"{rel}/reveal.js"
    exporter.reveal_theme = "white"
    resources = {"offline_assets": rel, "metadata": {"name": notebook.stem}}
    html, _ = exporter.from_notebook_node(nb, resources=resources)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{notebook.stem}.slides.html"
    atomic_write_text(path, html)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/slides.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the decks go (default build/slides)")
    ap.add_argument("--assets", type=Path, default=DEFAULT_ASSETS,
                    help="local reveal.js + KaTeX (default build/revealjs; fetched with npm when missing)")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        ap.error(f"notebook not found: {', '.join(missing)}")
    try:
        fetch_assets(args.assets)
        for nb in args.notebooks:
            path = build_deck(nb, args.out, args.assets)
            print(f"wrote {path} ({'tagged' if is_tagged(nbformat.read(nb, as_version=4)) else 'automatic'})")
    except SlidesError as err:
        print(f"slides: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
