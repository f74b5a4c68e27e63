"""examples/quickstart.ipynb runs from top to bottom (nbclient), so that it cannot rot."""

import nbformat
from nbclient import NotebookClient

from conftest import ROOT


def test_the_quickstart_notebook_runs():
    path = ROOT / "examples" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Fine-tune" in out
    assert "torch.Size([2, 10])" in out
