"""rnn.py's command line: the tiny command and its files, checkpoints only where asked,
flags taken whole, clear one-line errors for every bad input, and Ctrl-C."""

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

import rnn
from kit import tiny
from kit.data import DEFAULT_TOKENIZER
from tests import helpers
from tests.helpers import REPO, TINY_VALID, TempDirCase, run_main, run_script


class CommandLineCase(TempDirCase):
    def rnn_main(self, *argv):
        return run_main(rnn.main, *argv)

    def assertFails(self, argv, *needles, code=None):
        got, _, err = self.rnn_main(*argv)
        line = self.assertOneLineError(got, err, *needles)
        if code is not None:
            self.assertEqual(got, code)
        for name in ("tl.txt", "vl.txt", "m.txt", "model.pt"):
            self.assertFalse((self.tmp / name).exists(), f"{name} was left behind")
        self.assertEqual([p.name for p in self.tmp.iterdir() if p.name.startswith(".")], [])
        return line


class TinyCommandTest(CommandLineCase):
    @unittest.skipUnless((REPO / ".git").exists(), "not a git checkout")
    def test_the_handouts_tiny_command_leaves_the_checkout_clean(self):
        # It writes tiny_*.txt in the kit's folder: ignored there, the reference being data/tiny_*.txt.
        for name in (*tiny.OUTPUTS.values(), "results.json"):
            r = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO)
            self.assertEqual(r.returncode, 0, f"{name} is not ignored")
        tracked = subprocess.run(["git", "ls-files", "--", *(str(p.relative_to(REPO)) for p in
                                                              tiny.REFERENCE_FILES.values())],
                                 cwd=REPO, capture_output=True, text=True).stdout.split()
        self.assertEqual(sorted(tracked), sorted(str(p.relative_to(REPO)) for p in tiny.REFERENCE_FILES.values()))
        self.assertEqual(tiny.ARGS[tiny.ARGS.index("--metrics_out") + 1], "tiny_metrics.txt")  # the handout's command

    def test_tiny_command_reproduces_the_committed_files_says_so_and_warns_of_nothing(self):
        r = run_script("rnn.py", *self.tiny())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertReproducesTinyFiles()
        self.assertEqual(r.stderr, "")  # no warning from torch or transformers, under either environment
        self.assertRegex(r.stdout.splitlines()[-1], r"^tiny command: reproduced data/tiny_reference.json to 4 "
                                                    r"decimals \(largest \|difference\| .* over 22 points; made with torch 2\.5\.1")
        self.assertIn("each point's valid loss is over the first batch (--val_batches 1, the starter's)",
                      r.stdout.splitlines()[0])

    def test_the_tiny_verdict_names_the_first_point_off_and_is_silent_for_other_commands(self):
        reference = json.loads(tiny.REFERENCE.read_text(encoding="utf-8"))
        args = rnn.parse_args(map(str, self.tiny()))
        args.tokenizer = DEFAULT_TOKENIZER
        train, valid = list(reference["train_losses"]), list(reference["val_losses"])
        self.assertIn("tiny command: reproduced", tiny.verdict(args, [x + 9e-5 for x in train], valid))
        here = os.getcwd()
        try:  # from another folder, "my_tokenizer" and data/... are still the kit's
            os.chdir(self.tmp)
            self.assertIn("tiny command: reproduced", tiny.verdict(args, train, valid))
        finally:
            os.chdir(here)
        valid[3] += 0.0123
        self.assertEqual(tiny.verdict(args, train, valid),
                         f"tiny command: NOT reproduced: valid point 3 is {valid[3]:.6f}, data/tiny_reference.json has "
                         f"{reference['val_losses'][3]:.6f} (|difference| 0.012; made with {reference['made_with']})")
        for flag, value in (("--num_sequences", "64"), ("--val_batches", "0"), ("--seed", "1")):
            other = rnn.parse_args(map(str, self.tiny(flag, value)))
            other.tokenizer = DEFAULT_TOKENIZER
            self.assertIsNone(tiny.verdict(other, train, valid), flag)

    def test_val_batches_zero_scores_the_whole_validation_set(self):
        # 121 sequences at batch 1: the last point (batch 120) follows the last batch, so the
        # saved model is the one the last point scored.
        code, out, err = self.rnn_main(*self.tiny("--num_sequences", "121", "--val_batches", "0",
                                                  "--checkpoint", self.tmp / "model.pt"))
        self.assertEqual(code, 0, err)
        self.assertIn("valid loss is over the whole validation set (--val_batches 0)", out)
        lm, _ = rnn.load_checkpoint(self.tmp / "model.pt")
        with torch.no_grad():
            losses = [rnn.next_token_loss(lm, s.unsqueeze(0), nn.CrossEntropyLoss()).item()
                      for s in rnn.SentenceDataset(TINY_VALID)]
        final = float((self.tmp / "vl.txt").read_text().split()[-1])
        self.assertEqual(len(losses), 47)
        self.assertAlmostEqual(final, sum(losses) / len(losses), delta=1e-6)
        self.assertGreater(abs(final - losses[0]), 1e-3)  # not the first batch's

    def test_files_hold_eleven_points_and_the_starters_metrics_lines(self):
        code, out, err = self.rnn_main(*self.tiny())
        self.assertEqual(code, 0, err)
        points = {}
        for name in ("tl.txt", "vl.txt"):
            lines = (self.tmp / name).read_text().splitlines()
            self.assertEqual(len(lines), 11)  # val_index = 12: batches 0, 12, ..., 120 of 128
            points[name] = [float(x) for x in lines]
            self.assertTrue(all(math.isfinite(x) and round(x, 6) == x for x in points[name]))
        metrics = (self.tmp / "m.txt").read_text().splitlines()
        self.assertEqual(metrics, [f"Final Train Loss: {points['tl.txt'][-1]}",
                                   f"Final Valid Loss: {points['vl.txt'][-1]}"])
        logged = [line for line in out.splitlines() if line.startswith("batch ")]
        self.assertEqual([line.split()[1] for line in logged], [f"{12 * i}/128" for i in range(11)])

    def test_no_checkpoint_unless_asked_and_model_path_is_the_same_flag(self):
        r = run_script(REPO / "rnn.py", *self.tiny("--num_sequences", "8"), cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["m.txt", "tl.txt", "vl.txt"])
        code, _, err = self.rnn_main(*self.tiny("--num_sequences", "8", "--model_path", self.tmp / "a.pt"))
        self.assertEqual(code, 0, err)
        self.assertEqual(set(torch.load(self.tmp / "a.pt", weights_only=True)),
                         {"config", "state_dict", "tokenizer", "args", "training"})

    def test_checkpoint_is_a_plain_dict_of_the_trained_model(self):
        # 121 sequences at batch 1: val_index 12, so the last point (batch 120) is the last batch.
        code, _, err = self.rnn_main(*self.tiny("--checkpoint", self.tmp / "model.pt", "--num_sequences", "121"))
        self.assertEqual(code, 0, err)
        checkpoint = torch.load(self.tmp / "model.pt", weights_only=True)  # no pickled modules
        self.assertEqual(checkpoint["config"], {"embed_dim": 64, "hidden_dim": 128, "vocab_size": 1024,
                                                "key_dim": 32, "value_dim": 32, "activation": "relu"})
        self.assertEqual(checkpoint["args"]["num_sequences"], 121)
        lm, _ = rnn.load_checkpoint(self.tmp / "model.pt")
        # The reloaded model is the trained one: it scores the validation set as the last point did.
        valid = DataLoader(rnn.SentenceDataset(TINY_VALID), batch_size=1, shuffle=False)
        final = float((self.tmp / "vl.txt").read_text().split()[-1])
        self.assertAlmostEqual(rnn.validate(lm, valid, nn.CrossEntropyLoss()), final, delta=1e-6)

    def test_tanh_from_the_command_line(self):
        code, _, err = self.rnn_main(*self.tiny("--activation", "tanh", "--num_sequences", "8",
                                                "--checkpoint", self.tmp / "model.pt"))
        self.assertEqual(code, 0, err)
        lm, checkpoint = rnn.load_checkpoint(self.tmp / "model.pt")
        self.assertEqual(checkpoint["config"]["activation"], "tanh")
        with torch.no_grad():
            self.assertLess(float(lm.rnn(torch.randn(1, 3, 64))[0].min()), 0.0)  # tanh states go negative

    def test_more_sequences_than_the_file_walks_it_again_and_says_so(self):
        code, out, err = self.rnn_main(*self.tiny("--num_sequences", "400", "--batch_size", "8"))
        self.assertEqual(code, 0, err)
        self.assertEqual(out.count("walking it 1.99 times"), 1)
        self.assertEqual(len((self.tmp / "tl.txt").read_text().splitlines()), 10)  # val_index 5, 50 batches


class FlagTest(CommandLineCase):
    def test_a_mistyped_flag_is_an_error_that_names_the_flag_meant(self):
        (self.tmp / "m.txt").write_text("an earlier run\n")
        code, _, err = self.rnn_main(*self.tiny()[:-2], "--num_sequence", "16")
        line = self.assertOneLineError(code, err, "--num_sequence", "did you mean --num_sequences?")
        self.assertEqual(code, 2, line)
        self.assertEqual((self.tmp / "m.txt").read_text(), "an earlier run\n")
        self.assertFalse((self.tmp / "tl.txt").exists())

    def test_a_missing_prepared_file_named_outright_says_what_to_run(self):
        # Left at their defaults, the data flags build the files (tests/test_resume.py); named, they do not.
        missing = self.tmp / "data" / "train_stories.json"
        self.assertFails(self.tiny(train=missing), f"--train_data {missing}: no such file; build it with: "
                                                   "python3 prepare_data.py")

    def test_sampling_with_training_flags_names_them(self):
        line = self.assertFails(["--checkpoint", "model.pt", "--prompt", "Hi", "--embed_dim", "64",
                                 "--num_sequences=10"], "--embed_dim, --num_sequences have no effect when sampling",
                                code=2)
        self.assertNotIn("--checkpoint,", line)
        self.assertFails([*self.tiny(), "--temperature", "0.5"], "--temperature has no effect when training", code=2)

    def test_prompt_without_a_checkpoint(self):
        self.assertFails(["--prompt", "Hi"], "--prompt needs --checkpoint PATH", code=2)


# Runs a script as __main__ with Ctrl-C arriving while it imports a module (torch, say): the
# moment a busy machine makes likely, made certain here by raising it from the import itself.
CTRL_C_AT_IMPORT = """
import builtins, runpy, sys
script, module = sys.argv[1], sys.argv[2]
sys.argv = [script, "--help"]
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name == module:
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
runpy.run_path(script, run_name="__main__")
"""


class InterruptTest(CommandLineCase):
    def test_ctrl_c_while_importing_is_the_one_line_and_130(self):
        for script, module, line in (("rnn.py", "torch", "rnn.py: interrupted; no output written"),
                                     ("rnn.py", "kit.runs", "rnn.py: interrupted; no output written"),
                                     ("experiments.py", "rnn", "experiments.py: interrupted"),
                                     ("bench.py", "torch", "bench.py: interrupted"),
                                     ("test_runner.py", "torch", "test_runner.py: interrupted")):
            r = subprocess.run([sys.executable, "-c", CTRL_C_AT_IMPORT, str(REPO / script), module], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual((r.returncode, r.stderr), (130, line + "\n"), (script, module))
            self.assertEqual(r.stdout, "")

    def test_ctrl_c_is_one_line_exit_130_writes_no_output_and_keeps_the_last_save(self):
        argv = [sys.executable, str(REPO / "rnn.py"), *map(str, self.tiny("--checkpoint", self.tmp / "model.pt",
                                                                          "--num_sequences", "5000"))]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        first = proc.stdout.readline()  # "training on ...": the model is built and training starts
        self.assertIn("training on", first)
        lines = [proc.stdout.readline() for _ in range(2)]  # the data note, then batch 0's point: saved by now
        self.assertTrue(lines[1].startswith("batch 0/5,000"), lines)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(lines[0], "^" + re.escape(f"rnn.py: interrupted; no output written; {self.tmp / 'model.pt'} "
                                                   "holds the run, saved after batch ")
                         + r"[\d,]+ of 5,000: the same command with --resume continues it$")
        self.assertEqual(list(self.tmp.iterdir()), [self.tmp / "model.pt"])  # the last save, no temporary file


class BadInputTest(CommandLineCase):
    def write(self, name, obj):
        path = self.tmp / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
        return path

    def test_missing_data_file(self):
        missing = self.tmp / "missing.json"
        line = self.assertFails(self.tiny(train=missing), "--train_data", missing, "no such file")
        self.assertNotIn("prepare_data", line)  # the hint is for the prepared files only

    def test_unreadable_data_file(self):
        self.assertFails(self.tiny(val=self.tmp), "--val_data", "directory")
        bad = self.tmp / "latin1.json"
        bad.write_bytes(b"[[3, 4]]\xff")
        self.assertFails(self.tiny(train=bad), "--train_data", bad, "cannot read")

    def test_not_json(self):
        bad = self.write("bad.json", "[[3, 4], [5,")
        self.assertFails(self.tiny(train=bad), "--train_data", bad, "not valid JSON")

    def test_json_that_is_not_a_list_of_id_sequences(self):
        for i, obj in enumerate(({"a": [1, 2]}, ["some text"], [[3, 4.5]], [[3, True]], [[[3, 4]]], [[3, "4"]])):
            bad = self.write(f"bad{i}.json", obj)
            self.assertFails(self.tiny(train=bad), "--train_data", bad)

    def test_empty_dataset(self):
        empty = self.write("empty.json", [])
        self.assertFails(self.tiny(val=empty), "--val_data", empty, "empty")

    def test_id_outside_vocabulary(self):
        for bad_id in (1024, -1):
            bad = self.write("ids.json", [[3, 4, 1], [5, bad_id, 1]])
            self.assertFails(self.tiny(train=bad), "--train_data", bad, f"id {bad_id}", "1024")

    def test_id_too_large_for_int64(self):
        bad = self.write("huge.json", "[[3, 4, 1], [5, 99999999999999999999, 1]]")
        self.assertFails(self.tiny(train=bad), "--train_data", bad, "99999999999999999999")

    def test_sequence_shorter_than_two_tokens(self):
        bad = self.write("short.json", [[3, 4, 1], [1]])
        self.assertFails(self.tiny(val=bad), "--val_data", bad, "sequence 1", "at least 2")

    def test_ragged_sequences_above_batch_size_one(self):
        ragged = self.write("ragged.json", [[3, 4, 5, 1], [5, 6, 1]] * 8)
        self.assertFails(self.tiny("--batch_size", "2", train=ragged), "--train_data", ragged,
                         "2 different lengths (3 to 4 tokens)", "--batch_size 2", "prepare_data.py")
        code, _, err = self.rnn_main(*self.tiny("--num_sequences", "16", train=ragged))
        self.assertEqual(code, 0, err)  # at batch size 1 nothing is stacked

    def test_non_positive_sizes_counts_and_batch(self):
        for flag, value in (("--embed_dim", "0"), ("--hidden_dim", "-3"), ("--dk", "0"), ("--dv", "x"),
                            ("--num_sequences", "0"), ("--batch_size", "-1"), ("--lr", "0"), ("--grad_clip", "-1")):
            self.assertFails(self.tiny(flag, value), flag, code=2)
        self.assertFails(self.tiny("--num_sequences", "5", "--batch_size", "8"), "--num_sequences 5 is less than "
                         "--batch_size 8")

    def test_unknown_or_missing_device(self):
        self.assertFails(self.tiny("--device", "xla"), "--device xla")
        if not torch.cuda.is_available():
            self.assertFails(self.tiny("--device", "cuda"), "--device cuda", "not available")

    def test_negative_temperature_and_empty_prompt(self):
        self.assertFails(["--checkpoint", "model.pt", "--prompt", "Hi", "--temperature", "-0.5"], "--temperature", code=2)
        self.assertFails(["--checkpoint", self.tmp / "x.pt", "--prompt", " "], "--prompt", "empty")

    def test_output_path_that_cannot_be_written(self):
        nowhere = self.tmp / "no_such_dir" / "m.txt"
        self.assertFails([*self.tiny(), "--metrics_out", nowhere], "--metrics_out", "does not exist")
        self.assertFails([*self.tiny(), "--checkpoint", self.tmp], "--checkpoint", "directory")

    def test_missing_corrupt_or_mismatched_checkpoint(self):
        sample = ["--prompt", "Once upon a time"]
        missing = self.tmp / "none.pt"
        self.assertFails(["--checkpoint", missing, *sample], "--checkpoint", missing, "no such file")
        corrupt = self.write("corrupt.pt", "not a checkpoint at all")
        self.assertFails(["--checkpoint", corrupt, *sample], "--checkpoint", corrupt, "not a file torch.load can read")
        lm = rnn.RNNLanguageModel(4, 4, 512, 2, 2)
        other = self.tmp / "other.pt"
        torch.save(rnn.checkpoint_dict(lm, "my_tokenizer", {}), other)
        self.assertFails(["--checkpoint", other, *sample], "--checkpoint", other, "512", "1024")

    def test_files_that_are_not_kit_checkpoints_say_what_they_are_and_what_to_do(self):
        sample = ["--prompt", "Once upon a time"]
        lm = rnn.RNNLanguageModel(8, 6, 1024, 4, 3)
        cases = {"module.pt": (lm, ["a pickled rnn.RNNLanguageModel object", "torch.save(rnn.checkpoint_dict(lm), path)"]),
                 "state.pt": (lm.state_dict(), ["a bare state_dict (17 tensors, no config)",
                                                "lm = rnn.RNNLanguageModel(8, 6, 1024, 4, 3)"]),
                 "list.pt": ([1, 2], ["holds a list, not the kit's checkpoint dict"]),
                 "dict.pt": ({"weights": torch.zeros(2), "epoch": 3},
                             ["a dict without config or state_dict (its keys are weights, epoch)"])}
        for name, (obj, needles) in cases.items():
            torch.save(obj, self.tmp / name)
            line = self.assertFails(["--checkpoint", self.tmp / name, *sample], f"--checkpoint {self.tmp / name}: ",
                                    *needles)
            self.assertTrue(line.isprintable() and len(line) < 400, line)  # no escape codes, no torch text
            (self.tmp / name).unlink()

    def test_the_handouts_torch_load_then_complete_works_and_points_to_load_checkpoint(self):
        lm = rnn.RNNLanguageModel(8, 6, 1024, 4, 3)
        torch.save(rnn.checkpoint_dict(lm), self.tmp / "model.pt")
        loaded = torch.load(self.tmp / "model.pt", weights_only=True)
        err = io.StringIO()
        rnn._DICT_HINT_SHOWN.clear()  # as in a fresh process
        with contextlib.redirect_stderr(err):
            text = rnn.complete(loaded, helpers.tokenizer(), "Once upon a time", 12)
            again = rnn.complete(loaded, helpers.tokenizer(), "Once upon a time", 12)
        self.assertEqual(text, rnn.complete(lm.eval(), helpers.tokenizer(), "Once upon a time", 12))
        self.assertEqual(again, text)
        self.assertEqual(len(err.getvalue().strip().splitlines()), 1)  # the hint once, not at every call
        self.assertIn('rnn.load_checkpoint("model.pt")', err.getvalue())

    def test_weights_that_do_not_fit_the_config_name_the_parameter_and_shapes(self):
        lm = rnn.RNNLanguageModel(8, 6, 1024, 4, 4)
        checkpoint = rnn.checkpoint_dict(lm, "my_tokenizer", {})
        checkpoint["config"]["embed_dim"] = 16
        path = self.tmp / "bad.pt"
        torch.save(checkpoint, path)
        self.assertFails(["--checkpoint", path, "--prompt", "Hi"], "weights do not fit its config",
                         "embeddings.weight is (1024, 8) in the file but (1024, 16) by its config")

    def test_error_is_one_line_without_traceback_from_the_shell(self):
        missing = self.tmp / "missing.json"
        r = run_script("rnn.py", *self.tiny(train=missing))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().splitlines(), [f"rnn.py: error: --train_data {missing}: no such file"])
