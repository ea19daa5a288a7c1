from __future__ import annotations

import nbformat
import pytest

from maelib import notebook_tools as nt


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
    cell.outputs = [nbformat.v4.new_output("stream", text="saved to /work/main/runs/x.png\n")]
    nb.cells.append(cell)
    nt.clean_notebook(nb)
    assert "widgets" not in nb.metadata
    assert "/work/" not in nb.cells[-1].outputs[0]["text"] and "<path>" in nb.cells[-1].outputs[0]["text"]


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
