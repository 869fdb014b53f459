"""colab_notebook.ipynb executed end to end by a real Jupyter kernel, headless, at a tiny scale.

The kernel runs this interpreter (a kernelspec written into a temporary folder), so the notebook
sees the same environment as the tests. RNN_KIT_SCALE is tiny, so every training run is one to a
few batches; RNN_KIT_RESULTS is a temporary folder. Any cell error fails the test (nbclient raises
CellExecutionError with the cell's traceback). Needs the Jupyter packages of
requirements-notebook.txt and matplotlib; skipped without them (the course's environment).
"""

import importlib.util
import json
import os
import sys
import unittest
from unittest import mock

from tests.helpers import REPO, TempDirCase

NOTEBOOK = REPO / "colab_notebook.ipynb"
SCALE = "0.001"  # every run is one batch: 50,000 sequences -> 50, raised to one batch of 128
MISSING = [name for name in ("nbclient", "nbformat", "ipykernel", "matplotlib") if importlib.util.find_spec(name) is None]
PLOTS = ("sizes_train.png", "sizes_val.png", "batch_train.png", "batch_val.png", "sequences_train.png",
         "sequences_val.png", "large_losses.png")
TABLES = ("sizes.md", "batch_times.md", "sequences.md", "samples.md")


def outputs_of(cell):
    """(stream text, [display data dicts]) of an executed code cell."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream")
    data = [o["data"] for o in cell.get("outputs", []) if o["output_type"] in ("display_data", "execute_result")]
    return text, data


@unittest.skipIf(MISSING, f"the notebook test needs {', '.join(MISSING)}: "
                          "pip install -r requirements-plots.txt -r requirements-notebook.txt")
class NotebookTest(TempDirCase):
    def kernel_manager(self):
        """A KernelManager whose kernel is this interpreter, through a kernelspec in self.tmp."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        spec = self.tmp / "kernels" / "rnn-kit-test"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "rnn kit test", "language": "python"}))
        # IPC sockets in self.tmp: no TCP port, and no warning about unencrypted TCP
        return KernelManager(kernel_name="rnn-kit-test", transport="ipc", ip=str(self.tmp / "kernel-ipc"),
                             kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))

    def test_the_notebook_runs_end_to_end_at_a_tiny_scale(self):
        import nbformat
        from nbclient import NotebookClient

        nb = nbformat.read(NOTEBOOK, as_version=4)
        self.assertTrue(all(not c.get("outputs") and c.get("execution_count") is None
                            for c in nb.cells if c.cell_type == "code"),
                        "colab_notebook.ipynb is committed with outputs: clear them")
        results = self.tmp / "results"
        env = {"RNN_KIT_SCALE": SCALE, "RNN_KIT_DATA": "tiny", "RNN_KIT_RESULTS": str(results), "IPYTHONDIR": str(self.tmp / "ipython"),
               "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with mock.patch.dict(os.environ, env):
            km = self.kernel_manager()
            try:
                NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(REPO)}}).execute()
            finally:  # nbclient shuts down only the kernels it made itself
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
        cells = {c.get("id"): c for c in nb.cells if c.cell_type == "code"}

        settings, _ = outputs_of(cells["settings"])
        self.assertIn("on Colab: False; scale 0.001; data: tiny", settings)
        kit, _ = outputs_of(cells["kit"])
        self.assertIn("not on Colab: no Drive to mount", kit)
        requirements, _ = outputs_of(cells["requirements"])
        self.assertIn("not on Colab: nothing installed", requirements)
        self.assertIn("device: ", requirements)
        where, _ = outputs_of(cells["results"])
        self.assertIn(f"results are kept in {results.resolve()}", where)

        tests, _ = outputs_of(cells["tests"])
        self.assertRegex(tests, r"\n\d+ passed, 0 failed\n")
        self.assertIn("OK: tiny command: reproduced data/tiny_reference.json to 4 decimals", tests)

        for name in PLOTS:
            self.assertEqual((results / name).read_bytes()[:8], b"\x89PNG\r\n\x1a\n", name)
        for name in TABLES:
            self.assertIn("Machine: ", (results / name).read_text(encoding="utf-8"), name)
        shown = {q: outputs_of(cells[q])[1] for q in ("sizes", "batch", "sequences", "samples")}
        self.assertEqual({q: sum("image/png" in d for d in data) for q, data in shown.items()},
                         {"sizes": 2, "batch": 2, "sequences": 2, "samples": 1})
        tables = {q: "".join(d.get("text/markdown", "") for d in data) for q, data in shown.items()}
        self.assertIn("| Batch Size | Time (sec) | Handout, Colab T4 (sec) |", tables["batch"])
        self.assertIn("| embed = hidden |", tables["sizes"])
        self.assertIn("| num_sequences |", tables["sequences"])
        for t in ("0", "0.3", "0.8"):
            self.assertIn(f"## Temperature = {t}\n", tables["samples"])
        self.assertEqual(tables["samples"].count("\nOnce upon a time there was a"), 3 * 3)
        end, _ = outputs_of(cells["end"])
        self.assertIn(f"results: {results.resolve()}", end)
        self.assertIn("samples.md", end)


if __name__ == "__main__":
    unittest.main()
