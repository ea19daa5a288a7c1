"""tools/notebook_tools.py: student copies, cleaned outputs, the command line."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebook_tools", ROOT / "tools" / "notebook_tools.py")
nt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nt)


def _nb():
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell("def f(x):\n    return 2 * x", metadata={"tags": ["solution"]})
    sol.outputs = [nbformat.v4.new_output("stream", text="secret answer\n")]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("x = 1"),
        sol,
        nbformat.v4.new_markdown_cell("answer: 42", metadata={"tags": ["solution"]}),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_strip_solutions_replaces_only_tagged_cells():
    nb = _nb()
    out = nt.strip_solutions(nb)
    assert out.cells[0].source == "# Title" and out.cells[1].source == "x = 1"
    assert "student copy" in out.cells[2].source and "2 * x" not in out.cells[2].source
    assert out.cells[2].outputs == []
    assert "42" not in out.cells[3].source
    assert all("solution" not in c.metadata.get("tags", []) for c in out.cells)
    assert "2 * x" in nb.cells[2].source, "the original notebook must not change"


def test_write_student_copies_and_cli(tmp_path):
    src = tmp_path / "01_x.ipynb"
    nbformat.write(_nb(), src)
    assert nt.main(["strip-solutions", str(src), "--out", str(tmp_path / "student")]) == 0
    copy = nbformat.read(tmp_path / "student" / "01_x.ipynb", as_version=4)
    assert "secret answer" not in nbformat.writes(copy)
    nbformat.validate(copy)


def test_clean_notebook_scrubs_paths_and_widget_state():
    nb = _nb()
    cell = nbformat.v4.new_code_cell("print(p)")
    home, tmp = Path.home(), tempfile.gettempdir()
    text = (f"saved to {ROOT / 'runs' / 'x.png'}\ncache {home / '.cache' / 'maelib'} and scratch {tmp}/a b\n"
            "see /usr/share/doc/x and https://example.org/a\n")
    cell.outputs = [nbformat.v4.new_output("stream", text=text)]
    nb.cells.append(cell)
    nt.clean_notebook(nb)
    assert "widgets" not in nb.metadata
    assert nb.cells[-1].outputs[0]["text"] == ("saved to <path>\ncache <path> and scratch <path> b\n"
                                               "see /usr/share/doc/x and https://example.org/a\n")
    assert "/work/" not in Path(nt.__file__).read_text(), "no folder of a particular machine in the tool"


def test_cli_rejects_missing_notebook(tmp_path):
    with pytest.raises(SystemExit):
        nt.main(["strip-solutions", str(tmp_path / "nope.ipynb"), "--out", str(tmp_path)])


def test_student_copies_drop_stale_checker_verdicts():
    nb = _nb()
    check = nbformat.v4.new_code_cell("check_patchify(my_patchify);")
    check.outputs = [nbformat.v4.new_output("stream", text="… patchify: not attempted yet — the reference "
                                                            "implementation is used below\n")]
    other = nbformat.v4.new_code_cell("print(x)")
    other.outputs = [nbformat.v4.new_output("stream", text="x = 1 ✓ kept\n")]
    nb.cells += [check, other]
    out = nt.strip_solutions(nb)
    assert out.cells[-2].outputs == [] and "reference implementation" not in nbformat.writes(out)
    assert out.cells[-1].outputs[0]["text"] == "x = 1 ✓ kept\n", "other outputs stay"
    assert nt.has_checker_output(nb.cells[-2]) and not nt.has_checker_output(nb.cells[-1])


def test_student_copies_drop_outputs_that_answer_a_prediction():
    nb = _nb()
    reveal = nbformat.v4.new_code_cell("print(schedule)", metadata={"tags": [nt.REVEALS_TAG]})
    reveal.outputs = [nbformat.v4.new_output("stream", text="epoch 7: block 0.35\n")]
    reveal.execution_count = 3
    keep = nbformat.v4.new_code_cell("print(1)")
    keep.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells += [reveal, keep]
    out = nt.strip_solutions(nb)
    assert out.cells[-2].outputs == [] and out.cells[-2].execution_count is None
    assert out.cells[-2].source == "print(schedule)", "the learner can still run the cell"
    assert "epoch 7" not in nbformat.writes(out)
    assert out.cells[-1].outputs[0]["text"] == "1\n"
    assert nb.cells[-2].outputs, "the original notebook keeps its outputs"


def test_student_copies_of_the_notebooks_say_nothing_false_or_revealing(tmp_path):
    paths = sorted((ROOT / "notebooks").glob("0[1-7]_*.ipynb"))
    for path in nt.write_student_copies(paths, tmp_path):
        text = path.read_text()
        assert "reference implementation is used below" not in text, path.name
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if nt.REVEALS_TAG in cell.metadata.get("tags", []):
                assert not cell.get("outputs"), f"{path.name}: a stored output answers a prediction"
