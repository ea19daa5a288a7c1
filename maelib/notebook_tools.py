"""The former place of ``tools/notebook_tools.py`` (a tool of the source checkout): ``python -m
maelib.notebook_tools ...`` and its names run that file until every caller uses it directly."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "notebook_tools.py"
if not TOOL.is_file():
    raise ImportError(f"maelib.notebook_tools runs {TOOL}, which only a source checkout of maelib has")
globals().update({k: v for k, v in runpy.run_path(str(TOOL)).items() if not k.startswith("__")})

if __name__ == "__main__":
    sys.exit(main())  # noqa: F821 (defined by the tool above)
