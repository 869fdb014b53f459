"""Hostile submissions against the grader's second line, the children (grader/isolation.py,
grader/sandbox.py), and against run_autograder: each earns no more than its honest parts.

The files are in tests/hostile/ (placeholders like @SOURCE@ are filled in here). These tests run
the children directly, without the runner's static scan of the source (tests/test_rules.py
covers that), so that what the children allow is tested on its own. The sandbox user's tests
need root, as on Gradescope, and skip elsewhere.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import torch

from grader import gradescope, isolation, sandbox, under_test
from kit import tiny
from test_cases import test_rnn_cell, test_self_attention  # modules: their TestCase classes are no tests here
from test_cases.helpers import ATOL, RTOL
from tests.helpers import REPO, TempDirCase

HOSTILE = REPO / "tests" / "hostile"
LITERAL = REPO / "tests" / "literal" / "rnn.py"
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "the sandbox user needs the runner to be root, as on Gradescope")


def hostile(name, **fill):
    """The source of tests/hostile/NAME with each @KEY@ replaced by ``fill[key]``."""
    source = (HOSTILE / name).read_text(encoding="utf-8")
    for key, value in fill.items():
        source = source.replace(f"@{key}@", str(value))
    return source.encode("utf-8")


def checks_of(*tests):
    """run_checks' (checks, inputs) for the stored cases of these (class, method) checks."""
    from grader import components
    checks, inputs = [], {}
    for cls, method in tests:
        component = components.BY_MODULE[cls.__module__.rsplit(".", 1)[-1]]
        checks.append((component.module, cls.__name__, method, component.case, component.name,
                       frozenset((component.name, *component.runs))))
        inputs[component.case] = cls.inputs(under_test.stored_case(component.case))
    return checks, inputs


def processes_of(uid):
    """The pids of the live processes of ``uid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in text.splitlines() if line.startswith("Uid:")), [])
        state = next((line.split()[1] for line in text.splitlines() if line.startswith("State:")), "")
        if uids and int(uids[0]) == uid and state != "Z":
            found.append(int(status.parent.name))
    return found


class SandboxTest(TempDirCase):
    @ROOT_ONLY
    def test_a_child_cannot_read_edit_forge_kill_or_outlive_anything_of_the_graders(self):
        source = self.tmp / "source"  # as run_autograder leaves the unzipped grader: root's alone
        for rel in ("rnn.py", "test_runner.py", "test_data/rnn_cell.pt", "data/tiny_reference.json"):
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes((REPO / rel).read_bytes())
        os.chmod(source, 0o700)
        results = self.tmp / "results"
        results.mkdir(mode=0o700)
        drop = Path(tempfile.mkdtemp())  # a folder anyone may write in, as /tmp
        os.chmod(drop, 0o1777)
        self.addCleanup(lambda: [p.unlink() for p in drop.iterdir()] and None or drop.rmdir())
        before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.rglob("*") if p.is_file()}
        box = sandbox.current()
        checks, inputs = checks_of((test_rnn_cell.RNNCellTest, "test_forward"))
        code = hostile("reaches_the_grader.py", SOURCE=source, RESULTS=results / "results.json",
                       MARKER=drop / "marker", LITERAL=LITERAL)
        outcome, = isolation.run_checks(code, checks, inputs, timeout=20, box=box)
        said = "\n".join(outcome["output"])
        for what in ("read reference", "read answers", "edit reference", "edit runner", "plant sitecustomize",
                     "forge results", "kill parent"):
            self.assertIn(f"ATTEMPT {what}: PermissionError", said, what)
        self.assertTrue(outcome["ok"], outcome.get("message"))  # its honest part still runs: the literal's cell
        self.assertEqual({p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}, before)
        self.assertFalse((results / "results.json").exists())
        import sysconfig
        self.assertFalse((Path(sysconfig.get_paths()["purelib"]) / "sitecustomize.py").exists())
        self.assertEqual(processes_of(box.uid), [])  # the detached writer went with the child
        time.sleep(3.5)  # past the writer's 3 s
        self.assertFalse((drop / "marker").exists())

    @ROOT_ONLY
    def test_the_sandbox_user_exists_owns_nothing_of_the_graders_and_is_not_root(self):
        box = sandbox.current()
        self.assertTrue(box.on)
        self.assertNotEqual(box.uid, 0)
        self.assertTrue(sandbox.can_run(box, isolation.python_for_children()))
        for path in (REPO / "rnn.py", REPO / "test_data", REPO / "grader"):
            self.assertNotEqual(path.stat().st_uid, box.uid, path)

    def test_not_root_the_header_says_the_sandbox_user_is_off(self):
        self.assertIn("the sandbox user is off (the runner is not root)", sandbox.Sandbox().header())
        self.assertIn("the sandbox user is off (--no_sandbox)", sandbox.Sandbox(off_because="--no_sandbox").header())


class LimitsTest(TempDirCase):
    def test_fake_events_forged_results_and_floods_change_no_deadline_and_come_back_capped(self):
        attention = test_self_attention.SelfAttentionTest
        checks, inputs = checks_of((test_rnn_cell.RNNCellTest, "test_forward"), (attention, "test_step"),
                                   (attention, "test_forward"))
        start = time.monotonic()
        outcomes = isolation.run_checks(hostile("fakes_protocol.py"), checks, inputs, timeout=3,
                                        box=sandbox.current() if os.geteuid() == 0 else None)
        # The import allowance and 3 s a check bound it, whatever the events say; far below a hang.
        self.assertLess(time.monotonic() - start, isolation.IMPORT_TIMEOUT + 3 * len(checks) + 30)
        self.assertEqual(len(outcomes), 3)
        for outcome in outcomes:
            self.assertIsNotNone(outcome)
            message = outcome.get("message") or ""
            self.assertLessEqual(len(message), isolation.MESSAGE_CHARS + 3)
            self.assertTrue(all(c.isprintable() or c == "\n" for c in message), message[:80])
            self.assertLessEqual(len(outcome["uses"]), isolation.USES_KEPT)
            for label, _ in outcome["uses"]:
                self.assertTrue(label.isprintable() and len(label) <= 83, label[:90])
        # A forged result is read as data, not as a verdict: its value is what it is (zeros here).
        first = outcomes[0]
        if first["ok"]:
            self.assertEqual(float(first["value"].abs().sum()), 0.0)

    def test_a_hang_costs_one_time_limit_and_what_runs_the_hung_component_fails_at_once(self):
        source = LITERAL.read_text(encoding="utf-8")
        hang = source.replace("    def step(self, y_all):\n", "    def step(self, y_all):\n        while True:\n"
                                                               "            pass\n", 1)
        self.assertNotEqual(hang, source)
        attention = test_self_attention.SelfAttentionTest
        checks, inputs = checks_of((test_rnn_cell.RNNCellTest, "test_forward"), (attention, "test_step"),
                                   (attention, "test_step_first_position"), (attention, "test_forward"))
        outcomes = isolation.run_checks(hang.encode(), checks, inputs, timeout=3,
                                        box=sandbox.current() if os.geteuid() == 0 else None)
        self.assertTrue(outcomes[0]["ok"])  # RNNCell does not run SelfAttention
        self.assertIn("ran past the time limit of 3 s", outcomes[1]["message"])
        for outcome in outcomes[2:]:
            self.assertEqual(outcome["message"], "not run: SelfAttention ran past the time limit of 3 s in an earlier "
                                                 "check (test_step), and this check runs it")

    def test_a_segfault_an_exit_or_running_out_of_memory_fails_its_own_check_only(self):
        from test_cases import test_generate, test_language_model, test_validate
        from tests.test_grader import crash_file
        lm, generate = test_language_model.LanguageModelTest, test_generate.GenerateTest
        checks, inputs = checks_of((test_rnn_cell.RNNCellTest, "test_forward"), (test_validate.ValidateTest,
                                                                                "test_validate"),
                                   (lm, "test_select_token_sampling"), (lm, "test_select_token_greedy"),
                                   (generate, "test_sampled"), (generate, "test_default_length"),
                                   (generate, "test_greedy"))
        outcomes = isolation.run_checks(crash_file().encode(), checks, inputs, timeout=20,
                                        box=sandbox.current() if os.geteuid() == 0 else None)
        said = [o["message"] if not o["ok"] else None for o in outcomes]
        self.assertIsNone(said[0])
        self.assertIn("crashed with a segmentation fault (SIGSEGV)", said[1])
        self.assertIn("called sys.exit(4)", said[2])
        self.assertIsNone(said[3])
        self.assertIn("exited with status 3 before returning a result", said[4])
        self.assertIn("ran out of memory (the grader allows 8 GB", said[5])
        self.assertIsNone(said[6])

    def test_printing_hundreds_of_megabytes_fails_the_import_and_the_runner_keeps_a_few_lines(self):
        checks, inputs = checks_of((test_rnn_cell.RNNCellTest, "test_forward"))
        outcome, = isolation.run_checks(hostile("floods_output.py"), checks, inputs, timeout=20,
                                        box=sandbox.current() if os.geteuid() == 0 else None)
        self.assertFalse(outcome["ok"])
        self.assertTrue(outcome.get("import"), outcome)
        self.assertLessEqual(len(outcome["output"]), isolation.OUTPUT_LINES * 4)
        self.assertTrue(all(len(line) <= isolation.LINE_CHARS + 3 and "\x1b" not in line for line in outcome["output"]))

    def test_output_files_linked_to_the_reference_are_not_read_through_the_links(self):
        result = isolation.run_program(hostile("links_answers.py", DATA=REPO / "data"), tiny.ARGS,
                                       {"my_tokenizer": REPO / "my_tokenizer"}, timeout=60,
                                       box=sandbox.current() if os.geteuid() == 0 else None)
        self.assertTrue(result["ok"], result["message"])  # it ran and exited 0...
        self.assertEqual(set(result["files"].values()), {None})  # ...but wrote no file of its own
        self.assertEqual(tiny.compare_files(result["files"], tiny.reference()), "tiny_train_losses.txt was not written")


class ScratchTest(unittest.TestCase):
    def test_a_killed_runners_scratch_folder_is_removed_by_the_next_runner_and_a_live_ones_kept(self):
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()  # its pid now names no process
        dead = Path(tempfile.mkdtemp(prefix=f"{isolation.SCRATCH_PREFIX}{gone.pid}-"))
        live = Path(tempfile.mkdtemp(prefix=f"{isolation.SCRATCH_PREFIX}{os.getpid()}-"))
        self.addCleanup(lambda: [p.rmdir() for p in (dead, live) if p.exists()])
        (dead / "work").mkdir()
        isolation.remove_stale_scratch()
        self.assertFalse(dead.exists())
        self.assertTrue(live.exists())


class AnswersTest(unittest.TestCase):
    """Nothing a child is given holds an expected value: no input tensor is, or is a multiple of, a
    tensor the checks compare with (the expected values of any case), to within the checks' own
    tolerance."""

    def tensors(self, value):
        if torch.is_tensor(value):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from self.tensors(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from self.tensors(v)

    def assertNoAnswerGiven(self, cases, where):
        from test_runner import component_tests
        given, expected = [], []
        for test in component_tests([]):
            case = cases[test.case_name]
            inputs = type(test).inputs(case)
            given.extend(self.tensors(inputs))
            ids = {id(t) for t in self.tensors(inputs)}
            expected.extend(t for t in self.tensors(case) if id(t) not in ids)
        for answer in expected:
            if not answer.is_floating_point() or answer.numel() < 2:
                continue
            a = answer.double().reshape(-1)
            for value in given:
                if tuple(value.shape) != tuple(answer.shape) or not value.is_floating_point():
                    continue
                v = value.double().reshape(-1)
                scale = float(a @ v / (v @ v)) if float(v @ v) > 0 else 0.0
                close = bool(((scale * v - a).abs() <= ATOL + RTOL * a.abs()).all())
                self.assertFalse(close, f"{where}: an input of shape {tuple(value.shape)} is an answer")

    def test_the_stored_cases_inputs_hold_no_answer(self):
        from grader import components
        self.assertNoAnswerGiven({c.case: under_test.stored_case(c.case) for c in components.CHECKED}, "stored")

    def test_fresh_cases_inputs_hold_no_answer(self):
        from grader import make_test_data
        for seed in (1,):
            self.assertNoAnswerGiven(make_test_data.fresh_cases(seed), f"fresh seed {seed}")


class AutograderTest(TempDirCase):
    """run_autograder takes results.json from a runner that finished, never the file it finds there."""

    def autograde(self, fake_runner):
        root = self.tmp / "ag"
        (root / "submission").mkdir(parents=True)
        (root / "results").mkdir()
        (root / "source" / "autograder").mkdir(parents=True)
        (root / "submission" / "rnn.py").write_text("# a submission\n")
        (root / "source" / "autograder" / "points.json").write_text("{}\n")
        python = self.tmp / "python"  # stands in for the runner's Python: what it does is the test's
        python.write_text("#!/bin/sh\n" + fake_runner.replace("@RESULTS@", str(root / "results" / "results.json")))
        python.chmod(0o755)
        r = subprocess.run(["bash", str(REPO / "autograder" / "run_autograder")], capture_output=True, text=True,
                           env={**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": str(python)},
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads((root / "results" / "results.json").read_text())

    def test_a_runner_killed_after_a_forged_results_json_scores_0_interrupted(self):
        results = self.autograde('case "$*" in *test_runner.py*) echo \'{"score": 100, "tests": []}\' > "@RESULTS@";'
                                 ' kill -9 $$;; *) exec ' + sys.executable + ' "$@";; esac\n')
        self.assertEqual(results["score"], 0)
        self.assertIn("The grader was interrupted (exit status 137)", results["output"])

    def test_a_runner_that_exits_0_without_results_scores_0_interrupted(self):
        results = self.autograde('case "$*" in *test_runner.py*) exit 0;; *) exec ' + sys.executable + ' "$@";; esac\n')
        self.assertEqual(results["score"], 0)
        self.assertIn("interrupted", results["output"])


class PointsTest(unittest.TestCase):
    def test_checks_points_add_up_exactly_to_their_components(self):
        from grader import components
        for points, n in ((10, 3), (15, 3), (10, 7), (20, 4), (5, 1), (15, 2)):
            shares = gradescope.split(points, n)
            self.assertEqual(len(shares), n)
            self.assertEqual(sum(shares), points, (points, n))
            self.assertLessEqual(max(shares) - min(shares), 0.25)
        verdicts = [(c.name, f"{c.name} {i}", None) for c in components.COMPONENTS
                    for i in range({"RNNCell": 1, "RNN": 3, "SelfAttention": 3, "RNNLanguageModel": 5, "validate": 1,
                                    "train": 4, "generate": 3, "tiny command": 1}[c.name])]
        content = gradescope.results(verdicts, components.DEFAULT_POINTS)
        self.assertEqual(content["score"], 100)
        self.assertEqual(sum(t["max_score"] for t in content["tests"]), 100)
        without_tiny = [v for v in verdicts if v[0] != "tiny command"]
        self.assertEqual(sum(t["max_score"] for t in gradescope.results(without_tiny, components.DEFAULT_POINTS)["tests"]),
                         85)


if __name__ == "__main__":
    unittest.main()
