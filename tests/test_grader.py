"""The grader course staff grade with: each deliberately wrong student file (the literal
completion, edited) fails where it should and nowhere else -- a hang only where it hangs, and
within the time limit; nn.RNN, torch.rnn_tanh_cell and F.scaled_dot_product_attention are
named as forbidden with their lines; answers copied from test_data/ earn nothing on fresh
cases; a file that patches the comparisons and writes a fake results.json still fails and
scores below the maximum -- and the literal completion scores the maximum through the
Gradescope layout (run_autograder in a simulated /autograder). A crash, an exit, a segfault or
running out of memory (which the runner's scan refuses before anything runs, when written as
ctypes or os._exit) are tests/test_hostile.py's, on the children alone."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tests.helpers import LITERAL, REPO, run_main, run_script
from tests.test_component_runner import NUM_COMPONENT_CHECKS, outcomes

HANG_TIMEOUT = 4  # seconds per check for the hanging file; its one hanging check costs this


def edited(edits):
    text = LITERAL.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"the literal completion no longer holds {old!r}"
        text = text.replace(old, new)
    return text


def line_of(text, needle):
    """The 1-based line of the file's text holding ``needle`` (once)."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


SELECT_TOKEN = "        if temperature == 0:\n            return torch.argmax(token_logits)\n"


def hang_file(pid_file):
    """select_token loops for ever at any temperature above 0 (and records its process id first)."""
    return edited([("import json\n", "import json\nimport os\n"),
                   (SELECT_TOKEN, SELECT_TOKEN + f"        open({str(pid_file)!r}, 'a').write(str(os.getpid()) + '\\n')\n"
                                                 f"        while True:\n            pass\n")])


def forbidden_file():
    return edited([
        ("        self.out = nn.Linear(hidden_dim, hidden_dim)\n",
         "        self.out = nn.Linear(hidden_dim, hidden_dim)\n"
         "        nn.RNN(input_dim, hidden_dim, batch_first=True)  # built, not kept\n"),
        ("        scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2) / (self.key_dim ** 0.5)  # (B, t)\n"
         "        weights = torch.softmax(scores, dim=1)\n"
         "        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)                     # (B, dv)\n",
         "        context = torch.nn.functional.scaled_dot_product_attention(query.unsqueeze(1), keys, values)"
         ".squeeze(1)\n"),
        ("    lm.eval()\n    mean_loss = 0.0\n",
         "    x = torch.zeros(1, 2)\n"
         "    torch.rnn_tanh_cell(x, x, x.new_zeros(2, 2), x.new_zeros(2, 2))\n"
         "    lm.eval()\n    mean_loss = 0.0\n"),
    ])


def crash_file():
    """validate segfaults (train keeps a copy of the right one), select_token calls sys.exit at 0.7,
    generate calls os._exit at temperature 0.5 and asks for 64 GB at its default length."""
    return edited([
        ("def validate(lm, dataset, loss_fn):\n",
         "def validate(lm, dataset, loss_fn):\n    import ctypes\n    ctypes.string_at(0)\n\n\n"
         "def _validate(lm, dataset, loss_fn):\n"),
        ("round(validate(lm, valid_data, loss_fn), 6)", "round(_validate(lm, valid_data, loss_fn), 6)"),
        (SELECT_TOKEN, SELECT_TOKEN + "        if temperature == 0.7:\n            import sys\n            sys.exit(4)\n"),
        ("    def generate(self, tokens, max_tokens=10, temperature=0.0):\n",
         "    def generate(self, tokens, max_tokens=10, temperature=0.0):\n"
         "        if temperature == 0.5:\n            import os\n            os._exit(3)\n"
         "        if max_tokens == 10:\n            torch.empty(2**36, dtype=torch.uint8)\n"),
    ])


def cheat_file(results_path):
    """Patches every comparison it can reach, writes a perfect results.json (at import and at exit),
    and has RNNCell return zeros and a main that writes nothing."""
    patches = f'''
import atexit, json, os, sys, unittest
import torch

def _fake():
    os.makedirs(os.path.dirname({str(results_path)!r}), exist_ok=True)
    with open({str(results_path)!r}, "w") as f:
        json.dump({{"score": 1000, "output": "faked", "tests": []}}, f)

_fake()
atexit.register(_fake)
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
unittest.TestCase.assertEqual = lambda *a, **k: None
unittest.TestCase.assertTrue = lambda *a, **k: None
for _module in list(sys.modules.values()):
    for _name in ("check_tensor", "check_tokens", "check_losses", "check_state"):
        if hasattr(_module, _name):
            setattr(_module, _name, lambda *a, **k: None)
'''
    return edited([("torch.manual_seed(10601)  # DO NOT", patches + "\ntorch.manual_seed(10601)  # DO NOT"),
                   ("        return self.activation(self.i2h(input) + self.h2h(hidden_state))",
                    "        return torch.zeros(input.shape[0], self.i2h.out_features)"),
                   ("    args = parser.parse_args()\n", "    args = parser.parse_args()\n    return\n")])


def copied_answer_file():
    """RNNCell.forward returns the stored expected output of test_data/rnn_cell.pt."""
    return edited([("        return self.activation(self.i2h(input) + self.h2h(hidden_state))",
                    f"        return torch.load({str(REPO / 'test_data' / 'rnn_cell.pt')!r}, "
                    f"weights_only=True)['expected']")])


def check_labels():
    """{'Component: docstring'} of every component check, from the check modules' own docstrings."""
    import test_runner
    return {f"{t.component}: {t._testMethodDoc.strip().rstrip('.')}" for t in test_runner.component_tests([])}


class GraderTest(unittest.TestCase):
    """Every student file is graded once, two at a time, in setUpClass; each test reads its runs."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        os.chmod(cls.tmp, 0o711)  # the hanging file's children, the sandbox user's as root, note their pids here
        (cls.tmp / "pids").mkdir(mode=0o1777)
        os.chmod(cls.tmp / "pids", 0o1777)
        cls.pid_file = cls.tmp / "pids" / "hang.pids"
        files = {"hang": hang_file(cls.pid_file), "forbidden": forbidden_file(), "copied": copied_answer_file()}
        cls.texts = files
        paths = {}
        for name, text in files.items():
            (cls.tmp / name).mkdir()
            paths[name] = cls.tmp / name / "rnn.py"
            paths[name].write_text(text, encoding="utf-8")
        # The Gradescope layout: the zip unpacked in source/, the submission, results/.
        cls.zip = cls.tmp / "autograder.zip"
        cls.zip_run = run_script("autograder/make_zip.py", "--out", cls.zip)
        roots = {}
        for name in ("literal", "cheat"):
            root = cls.tmp / f"root-{name}"
            (root / "submission").mkdir(parents=True)
            with zipfile.ZipFile(cls.zip) as z:
                z.extractall(root / "source")
            roots[name] = root
        shutil.copyfile(LITERAL, roots["literal"] / "submission" / "rnn.py")
        cls.fake_results = roots["cheat"] / "results" / "results.json"
        (roots["cheat"] / "submission" / "rnn.py").write_text(cheat_file(cls.fake_results), encoding="utf-8")
        cls.roots = roots

        def autograde(root):
            start = time.monotonic()
            r = subprocess.run(["bash", str(root / "source" / "run_autograder")], capture_output=True, text=True,
                               env={**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable,
                                    "OMP_NUM_THREADS": "1"}, timeout=900)
            return r, time.monotonic() - start

        def grade(*args):
            start = time.monotonic()
            r = run_script("test_runner.py", *args, env={"OMP_NUM_THREADS": "1"})
            return r, time.monotonic() - start

        jobs = {"literal": lambda: autograde(roots["literal"]), "cheat": lambda: autograde(roots["cheat"]),
                "hang": lambda: grade("--rnn", paths["hang"], "--timeout", HANG_TIMEOUT),
                "forbidden": lambda: grade("--rnn", paths["forbidden"]),
                "copied_stored": lambda: grade("--rnn", paths["copied"], "-k", "rnn_cell"),
                "copied_fresh": lambda: grade("--rnn", paths["copied"], "-k", "rnn_cell", "--fresh", "3")}
        # Two at a time, one thread each (see test_component_runner).
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
            cls.runs = {name: future.result() for name, future in futures.items()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def results_of(self, name):
        r, _ = self.runs[name]
        return r, outcomes(r.stdout)

    def assertOnlyTheseFail(self, name, failing):
        """The run's checks whose label holds one of ``failing``'s (component, words) failed, each with its
        phrase; every other check passed."""
        r, results = self.results_of(name)
        self.assertEqual(len(results), NUM_COMPONENT_CHECKS, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertEqual(r.returncode, 1)
        matched = set()
        for component, words, phrase in failing:
            found = [label for label in results if label.split(":")[0] == component and words in label]
            self.assertTrue(found, f"{name}: no check {component} {words!r}")
            for label in found:
                self.assertIsNotNone(results[label], f"{name}: {label} passed")
                self.assertIn(phrase, results[label], f"{name}: {label}")
                matched.add(label)
        for label, message in results.items():
            if label not in matched:
                self.assertIsNone(message, f"{name}: {label} failed: {message}")
        self.assertEqual(r.stdout.strip().splitlines()[-1],
                         f"{NUM_COMPONENT_CHECKS - len(matched)} passed, {len(matched)} failed")

    def test_a_hang_fails_its_check_and_what_runs_the_hung_component_at_once(self):
        limit = f"ran past the time limit of {HANG_TIMEOUT} s"
        not_run = (f"not run: RNNLanguageModel ran past the time limit of {HANG_TIMEOUT} s in an earlier check "
                   f"(test_select_token_sampling), and this check runs it")
        # The checks run in the registry's order, each module's by name: the step path comes after.
        # validate and train run on the grader's stand-in model, not the student's: they still pass.
        self.assertOnlyTheseFail("hang", [("RNNLanguageModel", "select_token(logits (V,), 0.7)", limit),
                                          ("RNNLanguageModel", "rnn.step and attention.step", not_run),
                                          ("generate", "", not_run)])
        _, seconds = self.runs["hang"]
        # One hang of HANG_TIMEOUT, the checks that pass, and two children's start: well under this.
        self.assertLess(seconds, HANG_TIMEOUT + 120)
        pids = [int(line) for line in self.pid_file.read_text().split()]
        self.assertEqual(len(pids), 1, "the hanging check should have started once, and nothing after it")
        for pid in pids:  # killed and reaped, not left spinning
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)

    def test_forbidden_uses_are_named_with_their_line(self):
        text = self.texts["forbidden"]
        rnn_line = line_of(text, "nn.RNN(input_dim")
        sdpa_line = line_of(text, "scaled_dot_product_attention")
        cell_line = line_of(text, "rnn_tanh_cell")
        _, results = self.results_of("forbidden")
        for label, message in results.items():
            component = label.split(":")[0]
            if component == "RNNCell":
                self.assertIsNone(message, label)
                continue
            self.assertIsNotNone(message, label)
            self.assertIn("which the handout forbids", message)
            if component == "SelfAttention":
                self.assertIn(f"uses F.scaled_dot_product_attention (rnn.py line {sdpa_line}), which the handout "
                              f"forbids", message)
            elif component in ("validate", "train"):  # validate, and train, which runs it: on the stand-in
                self.assertIn(f"nn.RNNCell (torch.rnn_tanh_cell, rnn.py line {cell_line})", message)
                self.assertNotIn("nn.RNN (", message, label)
            else:  # the RNN, the language model and generate (its forward) build the RNN
                self.assertIn(f"nn.RNN (rnn.py line {rnn_line})", message, label)
        # The RNN's and attention's answers are right: only the rule fails them.
        self.assertNotIn("largest |difference|", self.runs["forbidden"][0].stdout)

    def test_copied_answers_pass_the_stored_case_only(self):
        stored, fresh = self.results_of("copied_stored")[1], self.results_of("copied_fresh")[1]
        label = "RNNCell: forward(input, hidden_state) on set weights"
        self.assertIsNone(stored[label])
        self.assertIn("RNNCell.forward output", fresh[label])
        self.assertIn("fresh cases drawn from seed 3", self.runs["copied_fresh"][0].stdout)

    def test_the_literal_completion_scores_the_maximum_in_the_gradescope_layout(self):
        self.assertEqual(self.zip_run.returncode, 0, self.zip_run.stderr)
        with zipfile.ZipFile(self.zip) as z:
            names = set(z.namelist())
        self.assertTrue({"setup.sh", "run_autograder", "test_runner.py", "rnn.py", "autograder/points.json",
                         "grader/child.py", "grader/components.py", "kit/tiny.py", "test_cases/helpers.py",
                         "test_data/train.pt", "my_tokenizer/tokenizer.json", "data/tiny_reference.json",
                         "data/tiny_metrics.txt"} <= names, names)
        # Every module of the packages the grader imports, and every component's checks.
        for package in ("kit", "grader", "test_cases"):
            for path in (REPO / package).glob("*.py"):
                self.assertIn(f"{package}/{path.name}", names)
        r, _ = self.runs["literal"]
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        results = json.loads((self.roots["literal"] / "results" / "results.json").read_text())
        points = json.loads((REPO / "autograder" / "points.json").read_text())
        total = sum(v for k, v in points.items() if not k.startswith("_"))
        self.assertEqual(len(results["tests"]), NUM_COMPONENT_CHECKS + 1)  # and the tiny command
        for test in results["tests"]:
            self.assertEqual(set(test), {"name", "score", "max_score", "status", "output"})
            self.assertEqual((test["status"], test["score"]), ("passed", test["max_score"]), test)
        self.assertAlmostEqual(sum(t["max_score"] for t in results["tests"]), total, places=3)
        self.assertAlmostEqual(results["score"], total, places=3)
        self.assertIn("fresh cases", results["output"])
        self.assertTrue(any(t["name"].startswith("rnn.py as a program") for t in results["tests"]))

    def test_a_file_that_patches_the_comparisons_and_fakes_results_json_still_fails(self):
        r, _ = self.runs["cheat"]
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        results = json.loads(self.fake_results.read_text())
        self.assertNotEqual(results.get("output"), "faked")
        total = sum(t["max_score"] for t in results["tests"])
        self.assertLess(results["score"], total)
        by_name = {t["name"]: t for t in results["tests"]}
        self.assertEqual(by_name["RNNCell: forward(input, hidden_state) on set weights"]["status"], "failed")
        program = next(t for t in results["tests"] if t["name"].startswith("rnn.py as a program"))
        self.assertEqual((program["status"], program["score"]), ("failed", 0.0))
        # Its patches are what the runner's scan of the source refuses, before anything runs.
        self.assertIn("which the grader does not allow", program["output"])
        self.assertIn("sys.modules", program["output"])

    def test_names_are_whole_and_what_the_file_prints_stays_out_of_passing_checks(self):
        r, results = self.results_of("hang")
        self.assertEqual(set(results), check_labels())
        self.assertNotIn("what it printed", r.stdout)  # the hang file prints nothing

    def test_a_later_check_says_when_an_earlier_component_failed(self):
        _, results = self.results_of("forbidden")
        message = results["RNNLanguageModel: forward(tokens) -> token_logits, hidden_states, attn_inputs"]
        self.assertIn("this check runs RNN, SelfAttention, which failed above", message)
        self.assertIn("fix RNN first", message)
        message = results["train: train(24 sequences, batch 2): val_index 1, a point after every batch"]
        self.assertIn("this check runs validate, which failed above", message)


class RuleScanTest(unittest.TestCase):
    """The static half of the rule: forbidden names as the file writes them, with their lines."""

    def scan(self, source):
        from grader import rules
        return [(label, line) for label, line, _ in rules.static_uses(source)]

    def test_each_way_of_writing_a_forbidden_name(self):
        cases = {
            "import torch.nn as nn\nx = nn.RNN(2, 2)\n": [("nn.RNN", 2)],
            "import torch\n\n\nx = torch.nn.RNNCell(2, 2)\n": [("nn.RNNCell", 4)],
            "from torch import nn\nclass A:\n    m = nn.MultiheadAttention(4, 1)\n": [("nn.MultiheadAttention", 3)],
            "from torch.nn import RNN as R\n": [("nn.RNN", 1)],
            "import torch.nn.functional as Fn\ny = Fn.scaled_dot_product_attention\n":
                [("F.scaled_dot_product_attention", 2)],
            "from torch.nn.functional import scaled_dot_product_attention\n": [("F.scaled_dot_product_attention", 1)],
            "import torch\ntorch._VF.rnn_tanh(1)\n": [("torch.rnn_tanh", 2)],
        }
        for source, expected in cases.items():
            self.assertEqual(self.scan(source), expected, source)

    def test_names_that_are_not_torch_s_are_not_flagged(self):
        source = ('"""No nn.RNN here, nor F.scaled_dot_product_attention."""\nimport torch.nn as nn\n'
                  "class RNN(nn.Module):\n    pass\nclass LM:\n    def __init__(self):\n        self.rnn = RNN()\n"
                  "        self.RNN = self.rnn\n        other.nn.RNN\n")
        self.assertEqual(self.scan(source), [])
        self.assertEqual(self.scan("def broken(:\n"), [])

    def test_the_kit_and_the_literal_completion_write_none(self):
        for path in (REPO / "rnn.py", LITERAL):
            self.assertEqual(self.scan(path.read_text(encoding="utf-8")), [], path)


class PointsAndResultsTest(unittest.TestCase):
    def test_points_split_evenly_among_a_component_s_checks(self):
        from grader import gradescope
        verdicts = [("RNN", "a", None), ("RNN", "b", "wrong"), ("RNN", "c", None), ("train", "t", None),
                    ("generate", "g", "wrong")]
        content = gradescope.results(verdicts, {"RNN": 9, "train": 20, "generate": 4}, "summary")
        self.assertEqual(content["score"], 26.0)  # 3 + 3 of RNN's 9, all 20 of train's, none of generate's
        self.assertEqual([(t["score"], t["max_score"], t["status"]) for t in content["tests"]],
                         [(3.0, 3.0, "passed"), (0.0, 3.0, "failed"), (3.0, 3.0, "passed"), (20.0, 20.0, "passed"),
                          (0.0, 4.0, "failed")])
        self.assertEqual(content["tests"][1]["output"], "wrong")

    def test_the_points_file_defaults_and_its_errors(self):
        from grader import gradescope
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "points.json"
            path.write_text('{"_note": "x", "train": 30}')
            points = gradescope.load_points(path)
            self.assertEqual(points["train"], 30)
            self.assertEqual(points["RNNCell"], 5)  # the documented default
            for text, needle in (('{"RNNcell": 5}', "did you mean 'RNNCell'?"), ('{"train": -1}', "must be a number"),
                                 ("{nope", "not JSON"), ("[1]", "expected an object")):
                path.write_text(text)
                with self.assertRaises(gradescope.PointsError) as e:
                    gradescope.load_points(path)
                self.assertIn(needle, str(e.exception))
                self.assertIn(str(path), str(e.exception))
        self.assertEqual(sum(gradescope.DEFAULT_POINTS.values()), 100)
        # The registry's defaults are the ones used, and the shipped file gives each component its default.
        from grader import components
        self.assertEqual(gradescope.DEFAULT_POINTS, {c.name: c.points for c in components.COMPONENTS})
        shipped = json.loads((REPO / "autograder" / "points.json").read_text())
        self.assertEqual({k: v for k, v in shipped.items() if not k.startswith("_")}, gradescope.DEFAULT_POINTS)


class RunnerErrorsTest(unittest.TestCase):
    """The runner's own bad input: one line, a suggestion, status 2, no traceback."""

    def one_line(self, *argv):
        import test_runner
        code, out, err = run_main(test_runner.main, *argv)
        self.assertEqual(code, 2, out + err)
        self.assertNotIn("Traceback", err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        return lines[0]

    def test_rnn_goes_with_the_component_checks_only(self):
        for part in ("--all", "--kit"):
            line = self.one_line("--rnn", LITERAL, part)
            self.assertIn(f"--rnn tests a student's rnn.py with the component checks; {part} runs the kit's own "
                          f"tests", line)
        self.assertIn("not allowed with argument", self.one_line("--all", "--kit"))

    def test_a_folder_a_typo_a_bad_number_and_a_bad_points_file(self):
        self.assertIn(f"--rnn {LITERAL.parent} is a folder: did you mean --rnn {LITERAL}?",
                      self.one_line("--rnn", LITERAL.parent))
        self.assertIn("did you mean --timeout?", self.one_line("--timout", "5"))
        self.assertIn("--timeout: must be positive, got 0", self.one_line("--timeout", "0"))
        self.assertIn("--fresh: expected an integer, got 'x'", self.one_line("--fresh", "x"))
        with tempfile.TemporaryDirectory() as tmp:
            bad = Path(tmp) / "points.json"
            bad.write_text('{"SelfAtention": 3}')
            line = self.one_line("--rnn", LITERAL, "--results", Path(tmp) / "r.json", "--points", bad)
            self.assertIn(f"--points {bad}: unknown component 'SelfAtention': did you mean 'SelfAttention'?", line)
            self.assertFalse((Path(tmp) / "r.json").exists())


class FreshCasesTest(unittest.TestCase):
    def test_the_same_seed_draws_the_same_case_and_another_differs_from_the_stored(self):
        from grader import make_test_data
        from grader.under_test import stored_case
        a, b = make_test_data.fresh_cases(5, ["rnn_cell"]), make_test_data.fresh_cases(5, ["rnn_cell"])
        self.assertIsNone(make_test_data.differs(a, b))
        stored = stored_case("rnn_cell")
        fresh = a["rnn_cell"]
        self.assertFalse(fresh["sizes"] == stored["sizes"] and torch.equal(fresh["input"], stored["input"]))
