"""experiments.py at a small scale on the tiny fixtures: every file, a second run that redoes
nothing, Ctrl-C that keeps the unfinished run's save for the same command to resume, and no
matplotlib."""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import torch
import torch.nn as nn

import rnn
from tests.helpers import REPO, TINY_TRAIN, TINY_VALID, TempDirCase, run_script

try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:  # the course's environment (requirements.txt) has none; the current one has
    HAVE_MATPLOTLIB = False
NEEDS_MATPLOTLIB = unittest.skipUnless(HAVE_MATPLOTLIB, "matplotlib is not installed (pip install -r "
                                                        "requirements-plots.txt); these run in the other environment")


class ExperimentsTest(TempDirCase):
    def argv(self, question, scale, *extra):
        return ["experiments.py", question, "--scale", scale, "--out", self.tmp / "res", "--train_data", TINY_TRAIN,
                "--val_data", TINY_VALID, "--num_tokens", "8", *extra]

    @NEEDS_MATPLOTLIB
    def test_all_makes_every_file_and_a_second_run_redoes_nothing(self):
        r = run_script(*self.argv("all", "0.007"))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        res = self.tmp / "res"
        for name in ("sizes_train.png", "sizes_val.png", "batch_train.png", "batch_val.png", "sequences_train.png",
                     "sequences_val.png", "large_losses.png"):
            self.assertEqual((res / name).read_bytes()[:8], b"\x89PNG\r\n\x1a\n", name)
        # 4 sizes + 4 batches + 4 counts + 1 large run, less the (128, batch 128, 50k) run that
        # three questions share: 11 distinct runs. num_sequences 10,000 at scale 0.007 is 70,
        # raised to one batch of 128.
        runs = sorted(p.name for p in (res / "runs").iterdir())
        self.assertEqual(len(runs), 11, runs)
        self.assertIn("e128_h128_k128_v128_b128_n128_s10601", runs)
        self.assertIn("e512_h512_k256_v256_b128_n1750_s10601", runs)
        record = json.loads((res / "runs" / "e128_h128_k128_v128_b32_n350_s10601" / "run.json").read_text())
        # batch 32, 350 sequences: 10 batches, val_index max(1, 35 // 32) = 1, a point a batch
        self.assertEqual(record["sequences_seen"], [32 * (i + 1) for i in range(10)])
        self.assertEqual(len(record["train_losses"]), 10)
        self.assertEqual(record["passes"], round(320 / 201, 2))
        for key in ("commit", "machine", "torch", "seconds", "device"):
            self.assertIn(key, record)
        # The final weights on every validation sequence, by an independent loop over them.
        lm, _ = rnn.load_checkpoint(res / "runs" / "e128_h128_k128_v128_b32_n350_s10601" / "model.pt")
        with torch.no_grad():
            losses = [rnn.next_token_loss(lm, s.unsqueeze(0), nn.CrossEntropyLoss()).item()
                      for s in rnn.SentenceDataset(TINY_VALID)]
        self.assertAlmostEqual(record["final_val_loss_whole_set"], sum(losses) / len(losses), delta=2e-6)
        self.assertIn(f"| 32 | {record['seconds']:.0f} | 482 | {record['train_losses'][-1]:.4f} | "
                      f"{record['val_losses'][-1]:.4f} | {record['final_val_loss_whole_set']:.4f} |",
                      (res / "batch_times.md").read_text(encoding="utf-8"))
        rows = list(csv.reader(io.StringIO((res / "batch_times.csv").read_text())))
        self.assertEqual([row[0] for row in rows], ["Batch Size", "32", "64", "128", "256"])
        self.assertEqual([row[2] for row in rows[1:]], ["482", "240", "125", "100"])  # the handout's T4 times
        for table in ("batch_times.md", "sizes.md", "sequences.md", "samples.md"):
            self.assertIn("Machine: ", (res / table).read_text(encoding="utf-8"))
        samples = (res / "samples.md").read_text(encoding="utf-8")
        for t in ("0", "0.3", "0.8"):
            self.assertIn(f"## Temperature = {t}\n", samples)
        self.assertEqual(samples.count("\nOnce upon a time there was a"), 3 * 3)
        self.assertIn("2.279308", samples)
        stamps = {p: p.stat().st_mtime_ns for p in (res / "runs").rglob("*") if p.is_file()}
        again = run_script(*self.argv("all", "0.007"))
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertEqual(again.stdout.count("finished earlier, not repeated"), 11)
        self.assertNotIn("training on", again.stdout)
        self.assertEqual({p: p.stat().st_mtime_ns for p in stamps}, stamps)
        self.assertEqual((res / "samples.md").read_text(encoding="utf-8"), samples)

    @NEEDS_MATPLOTLIB
    def test_ctrl_c_keeps_the_unfinished_runs_save_and_the_same_command_resumes_it(self):
        # batch at scale 0.02: 1,000 sequences a run; the first, batch 32, is 31 batches with a
        # point every 100 // 32 = 3, so 11 points; its model.pt appears at the first of them.
        argv = self.argv("batch", "0.02")
        proc = subprocess.Popen([sys.executable, *map(str, argv)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        first = self.tmp / "res" / "runs" / "e128_h128_k128_v128_b32_n1000_s10601"
        deadline = time.time() + 60
        while not (first / "model.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(lines[0], "^" + re.escape(
            f"experiments.py: interrupted; 0 finished run(s) kept in {self.tmp / 'res' / 'runs'}, the unfinished "
            f"{first.name} kept, saved after batch ") + r"\d+ of 31: the same command resumes it$")
        self.assertEqual(sorted(p.name for p in first.iterdir()), ["model.pt"])
        again = run_script(*argv)
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertIn(f"[1/4] {first.name}: resuming its last save", again.stdout)
        self.assertIn("--resume: continuing", again.stdout)
        record = json.loads((first / "run.json").read_text())
        self.assertEqual(len(record["train_losses"]), 11)
        self.assertEqual(record["sequences_seen"], [(3 * i + 1) * 32 for i in range(11)])

    def test_missing_matplotlib_is_a_clear_error(self):
        blocker = self.tmp / "block"
        blocker.mkdir()
        (blocker / "matplotlib.py").write_text("raise ImportError('blocked for the test')\n")
        r = run_script("experiments.py", "sizes", "--out", self.tmp / "res", env={"PYTHONPATH": str(blocker)})
        self.assertEqual(r.stderr.strip().splitlines(),
                         ["experiments.py: error: the plots need matplotlib: pip install -r requirements-plots.txt"])
        self.assertFalse((self.tmp / "res").exists())
