"""test_runner.py --rnn PATH, the student's tool: deliberate mistakes fail the right components,
with their "likely mistake:" line, and a mistake the tables do not know with none (that correct
completions pass every check is tests/test_mistakes.py's, in-process, and tests/test_grader.py's,
through the Gradescope layout); the stored test data is small, safe to
load, and what its script makes."""

import re
import unittest
from concurrent.futures import ThreadPoolExecutor

import torch

from grader import components
from tests.helpers import LITERAL, REPO, TempDirCase, run_script
from tests.test_mistakes import LINES, key_of, one_mistake_file

NUM_COMPONENT_CHECKS = 20

# One-mistake completions (tests/test_mistakes.py's, which checks every one of them in-process) graded
# end to end by the runner: name: (checks that must fail, each with its "likely mistake:" line, as
# (component, words of the check); components whose checks must all pass).
NAMED = {
    "no_scale": ([("SelfAttention", "last of 4"), ("SelfAttention", "forward"), ("RNNLanguageModel", "forward(tokens)")],
                 ["RNNCell", "RNN", "validate", "train", "generate"]),
    "prepended": ([("generate", "temperature=0")], ["RNNCell", "RNN", "SelfAttention", "RNNLanguageModel", "validate",
                                                     "train"]),
}
# A mistake no table holds fails its checks with what differs, and no line: never a guess.
TOP_K = [("return torch.multinomial(probs, 1)[0]",
          "top = torch.topk(probs, 3)\n        return top.indices[torch.multinomial(top.values, 1)[0]]")]


def outcomes(stdout):
    """{'Component: check': None or its message} from the runner's output."""
    result, last = {}, None
    for line in stdout.splitlines():
        m = re.match(r"  (\S.*?)\.+ (PASSED|FAILED)$", line)
        if m:
            last = m.group(1)
            result[last] = None if m.group(2) == "PASSED" else ""
        elif line.startswith("      ") and last is not None:
            result[last] += line.strip()
    return result


def matching(results, component, words):
    return {label: message for label, message in results.items()
            if label.split(":")[0] == component and words in label}


class ComponentRunnerTest(TempDirCase):
    def test_mistakes_are_named_under_their_failures_and_an_unknown_one_is_not(self):
        paths = {name: one_mistake_file(self.tmp, name) for name in NAMED}
        top_k = self.tmp / "top_k" / "rnn.py"
        top_k.parent.mkdir()
        top_k.write_text(LITERAL.read_text(encoding="utf-8").replace(*TOP_K[0]), encoding="utf-8")
        paths["top_k"] = top_k
        # Three runs at a time, one thread each: two torch processes with a thread per core each
        # oversubscribe OpenMP and can run many times slower than one after the other.
        with ThreadPoolExecutor(max_workers=3) as pool:
            runs = dict(zip(paths, pool.map(lambda p: run_script("test_runner.py", "--rnn", p,
                                                                 env={"OMP_NUM_THREADS": "1"}), paths.values())))
        for name, (must_fail, must_pass) in NAMED.items():
            r, line = runs[name], "likely mistake: " + LINES[key_of(name)]
            results = outcomes(r.stdout)
            self.assertEqual(r.returncode, 1, f"{name}: {r.stdout[-2000:]}")
            self.assertEqual(len(results), NUM_COMPONENT_CHECKS, f"{name}: {r.stdout[-2000:]}")
            for component, words in must_fail:
                found = matching(results, component, words)
                self.assertTrue(found, f"{name}: no check {component} {words!r}")
                for label, message in found.items():
                    self.assertIsNotNone(message, f"{name}: {label} passed")
                    self.assertIn(line, message, f"{name}: {label}")
            for component in must_pass:
                for label, message in matching(results, component, "").items():
                    self.assertIsNone(message, f"{name}: {label} failed: {message}")
            # The line stands right under the failure it explains, in the failure's indentation.
            self.assertIn("\n      " + line + "\n", r.stdout)
        sampling = matching(outcomes(runs["top_k"].stdout), "RNNLanguageModel", "select_token(logits (V,), 0.7)")
        self.assertTrue(sampling and all(message is not None for message in sampling.values()), runs["top_k"].stdout)
        self.assertNotIn("likely mistake:", runs["top_k"].stdout)

    def test_a_file_that_does_not_import_fails_every_component_with_its_reason(self):
        broken = self.tmp / "rnn.py"
        broken.write_text("import torch\nclass RNNCell(torch.nn.Module:\n    pass\n", encoding="utf-8")
        r = run_script("test_runner.py", "--rnn", broken)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot import {broken}: SyntaxError", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"0 passed, {NUM_COMPONENT_CHECKS} failed")

    def test_a_missing_file_is_a_one_line_error(self):
        r = run_script("test_runner.py", "--rnn", self.tmp / "nope.py")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip().splitlines(), [f"test_runner.py: error: --rnn {self.tmp / 'nope.py'}: no such file"])


class TestDataTest(unittest.TestCase):
    def test_small_and_loadable_with_torch_loads_safe_default(self):
        files = sorted((REPO / "test_data").glob("*.pt"))
        self.assertEqual([p.stem for p in files], sorted(c.case for c in components.CHECKED))
        self.assertEqual(len(files), 7)
        self.assertLess(sum(p.stat().st_size for p in files), 1_000_000)
        for path in files:
            self.assertIsInstance(torch.load(path, weights_only=True), dict)

    def test_the_script_regenerates_them_value_for_value_on_the_portable_cpu_kernels_too(self):
        # Older CPUs and ARM machines take other kernels, which change the last bits of the weights:
        # remade on those (the stored files were made on this machine's), they agree all the same.
        r = run_script("grader/make_test_data.py", "--check", env={"ATEN_CPU_CAPABILITY": "default"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-2000:])
        self.assertEqual(r.stdout.count(": the same"), len(components.CHECKED) + 1, r.stdout)  # and tiny_reference
        self.assertIn("tiny_reference.json: the same as data/tiny_*.txt", r.stdout)
