"""Notebook maintenance (a tool of the source checkout, not of the package): execute notebooks in place
(clean outputs) and write student copies without solutions.

``python tools/notebook_tools.py execute notebooks/*.ipynb``
``python tools/notebook_tools.py strip-solutions notebooks/*.ipynb --out student/``
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from maelib._io import atomic_write_text

SOLUTION_TAG = "solution"
REVEALS_TAG = "reveals-prediction"   # a cell whose stored output answers a "predict, then run" question
STUDENT_STUB = "# The solution is not part of the student copy: write your own in the exercise cell above."
ROOT = Path(__file__).resolve().parents[1]


def machine_paths() -> re.Pattern:
    """A pattern of the paths that name this machine's folders: the checkout, the home folder, the temp
    folder and the Python prefix (each with what follows it up to a space or a quote)."""
    folders = {str(ROOT), str(Path.home()), tempfile.gettempdir(), sys.prefix}
    roots = sorted((f.rstrip("/") for f in folders if len(f.rstrip("/")) > 1), key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(r) for r in roots) + r")(/[^\s'\"]*)?")


def _write_notebook(nb, path: Path) -> None:
    """Write ``nb`` as nbformat does (with a final newline), atomically."""
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def clean_notebook(nb) -> None:
    """Drop widget-state blobs and execution metadata; replace machine paths (:func:`machine_paths`) in
    outputs with ``<path>``."""
    paths = machine_paths()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = paths.sub("<path>", out["text"])
            for key, val in out.get("data", {}).items():
                if key.startswith("text/") and isinstance(val, str):
                    out["data"][key] = paths.sub("<path>", val)
            out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


def execute(paths: list[Path], timeout: int = 1200, kernel: str = "python3") -> None:
    """Execute notebooks in place (working directory: the notebook's folder), then clean them."""
    import nbformat
    from nbclient import NotebookClient

    for path in paths:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        clean_notebook(nb)
        _write_notebook(nb, path)
        print(f"executed {path}")


_VERDICT_RE = re.compile(r"^(…|✓|✗) ", re.M)


def has_checker_output(cell) -> bool:
    """Whether a code cell's outputs hold an exercise checker's verdict (a line starting with …, ✓ or ✗)."""
    return any(_VERDICT_RE.search(out.get("text", "") if isinstance(out.get("text", ""), str) else "")
               for out in cell.get("outputs", []))


def strip_solutions(nb):
    """Return a copy of ``nb`` for students: cells tagged ``solution`` are replaced by a stub and lose their
    outputs, checker cells lose their stored verdicts (they were computed with the reference solution), and
    cells tagged ``reveals-prediction`` lose the outputs that would answer a prediction before it is made."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        reveals = REVEALS_TAG in cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and (has_checker_output(cell) or reveals):
            cell.outputs = []
            cell.execution_count = None
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            if cell.cell_type == "code":
                cell.source = STUDENT_STUB
                cell.outputs = []
                cell.execution_count = None
            else:
                cell.source = "*Write your answer here.*"
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != SOLUTION_TAG] + ["exercise"]
    return nb


def write_student_copies(paths: list[Path], out_dir: Path) -> list[Path]:
    """Write student copies of ``paths`` into ``out_dir``; returns the written paths."""
    import nbformat

    written = []
    for path in paths:
        nb = strip_solutions(nbformat.read(path, as_version=4))
        target = Path(out_dir) / Path(path).name
        _write_notebook(nb, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/notebook_tools.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="execute notebooks in place")
    ex.add_argument("notebooks", nargs="+", type=Path)
    ex.add_argument("--timeout", type=int, default=1200)
    st = sub.add_parser("strip-solutions", help="write student copies without solution cells")
    st.add_argument("notebooks", nargs="+", type=Path)
    st.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    missing = [p for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"notebook not found: {', '.join(map(str, missing))}")
    if args.command == "execute":
        execute(args.notebooks, timeout=args.timeout)
    else:
        for p in write_student_copies(args.notebooks, args.out):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
