"""examples/dancegen.ipynb runs top to bottom (nbclient), and is kept in git without outputs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "dancegen.ipynb"
TAKE = ROOT.parent / "shared" / "data" / "cmu61-salsa-bvh" / "61_01.bvh"


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' brings nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' brings nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' brings nbclient")
    if not TAKE.is_file():
        pytest.skip(f"the shared salsa take {TAKE} is not here")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    html = [output for output in outputs if "text/html" in output.get("data", {})]
    assert len(html) >= 3 and all("data:video/mp4;base64," in output.data["text/html"] for output in html)
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the temperature sheet and the tiny model's preview
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "finished" in printed and "loop_ratio" in printed and "dancenet generate" in printed
