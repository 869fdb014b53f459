"""bench.py: its target decision by hand, and a small run that checks equality, prints the
peak memory and exits non-zero under --check exactly when a target is missed."""

import unittest

import bench
from tests.helpers import run_script

SMALL = ["--batch_size", "4", "--literal_rows", "2", "--seq_len", "8", "--embed_dim", "8", "--hidden_dim", "8",
         "--dk", "4", "--dv", "4", "--vocab_size", "32", "--repeats", "1", "--gen_tokens", "4", "--gen_batch", "2",
         "--gen_repeats", "2"]


class BenchTest(unittest.TestCase):
    def test_targets_by_hand(self):
        self.assertEqual(bench.missed_targets({"literal": 12.0, "peer": 1.1, "generation": 5.5}), [])
        self.assertEqual(bench.missed_targets({"literal": 9.9, "peer": 1.3, "generation": 5.0}), ["literal", "peer"])
        self.assertEqual(bench.missed_targets({"peer": 1.25, "generation": 4.9}), ["generation"])

    def test_a_small_run_checks_equality_reports_memory_and_exits_by_its_targets(self):
        r = run_script("bench.py", *SMALL, "--check")
        self.assertNotIn("Traceback", r.stderr)
        # --check: status 1 exactly when a line says a target was missed (tiny sizes may miss them)
        self.assertEqual(r.returncode, 1 if "targets missed: " in r.stdout else 0, r.stdout[-500:])
        self.assertEqual("all targets met" in r.stdout, r.returncode == 0)
        self.assertRegex(r.stdout, r"equality, literal vs rnn\.py: .*: OK")
        self.assertRegex(r.stdout, r"equality, peer vs rnn\.py: .*: OK")
        self.assertRegex(r.stdout, r"speed-up rnn\.py / literal, per token on 2 rows: [\d.]+x")
        self.assertRegex(r.stdout, r"greedy \(same tokens both ways: yes\)")
        self.assertRegex(r.stdout, r"peak memory of this process: [\d,]+ MiB resident")

    def test_more_literal_rows_than_rows_is_a_one_line_error(self):
        r = run_script("bench.py", "--batch_size", "4", "--literal_rows", "8")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().splitlines(),
                         ["bench.py: error: --literal_rows 8 is more than --batch_size 4"])
