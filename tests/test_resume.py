"""Resumable training: a run SIGKILLed at any moment and resumed ends bit for bit as an unbroken
one; a resume that differs from the saved run is refused; run folders keep finished runs; the
default data is built on a first run; the kit's data and tokenizer are found from elsewhere."""

import json
import os
import signal
import subprocess
import sys
import unittest

import torch

import kit.data
import kit.runs
import prepare_data
import rnn
from tests.helpers import REPO, TINY_TRAIN, TINY_VALID, TempDirCase, run_main

# A small model on the tiny data: 128 sequences in 32 batches of 4; a point every
# max(1, 12 // 4) = 3 batches, so points (and saves) after batches 0, 3, ..., 30: 11 saves,
# then the final write, the 12th rename of model.pt.
SMALL = ["--train_data", TINY_TRAIN, "--val_data", TINY_VALID, "--embed_dim", "8", "--hidden_dim", "16",
         "--dk", "8", "--dv", "8", "--num_sequences", "128", "--batch_size", "4"]

# (name, how the run dies, the save its resume continues from: last batch done, or None)
KILLS = [
    ("first_batch", {"at": "batch", "n": 0}, None),  # before any save: --resume starts afresh
    ("after_save_1", {"at": "after_save", "n": 1}, 0),
    ("between_saves", {"at": "batch", "n": 17}, 15),  # batch 17 of the 16..18 stretch
    ("during_save_7", {"at": "in_save", "n": 7}, 15),  # save 7 (batch 18) half-written: save 6 holds
    ("after_last_save", {"at": "after_save", "n": 11}, 30),  # batch 31 not trained yet
    ("during_final_write", {"at": "in_save", "n": 12}, 30),  # loss files renamed, model.pt not
]


def outputs(folder):
    return ["--train_losses_out", folder / "tl.txt", "--val_losses_out", folder / "vl.txt",
            "--metrics_out", folder / "m.txt", "--checkpoint", folder / "model.pt"]


def run_jobs(tmp, jobs):
    spec = tmp / "jobs.json"
    spec.write_text(json.dumps([{**job, "argv": [str(a) for a in job["argv"]], "log": str(job["log"])}
                                for job in jobs]))
    r = subprocess.run([sys.executable, str(REPO / "tests" / "kill_harness.py"), str(spec)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(r.stderr[-3000:])
    return json.loads(r.stdout)


@unittest.skipUnless(hasattr(os, "fork"), "the kill harness forks its runs")
class KillAndResumeTest(TempDirCase):
    def assertSameTensors(self, a, b, where):
        if torch.is_tensor(a):
            self.assertTrue(torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where)
        elif isinstance(a, dict):
            self.assertEqual(sorted(a, key=str), sorted(b, key=str), where)
            for key in a:
                self.assertSameTensors(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, (list, tuple)):
            self.assertEqual(len(a), len(b), where)
            for i, (x, y) in enumerate(zip(a, b)):
                self.assertSameTensors(x, y, f"{where}[{i}]")
        else:
            self.assertEqual(a, b, where)

    def test_killed_anywhere_and_resumed_it_ends_as_an_unbroken_run_bit_for_bit(self):
        whole = self.tmp / "whole"
        jobs = [{"argv": [*SMALL, *outputs(whole)], "log": self.tmp / "whole.log"}]
        for name, kill, _ in KILLS:
            folder = self.tmp / name
            jobs.append({"argv": [*SMALL, *outputs(folder)], "log": self.tmp / f"{name}.killed.log", "kill": kill})
            jobs.append({"argv": [*SMALL, *outputs(folder), "--resume"], "log": self.tmp / f"{name}.log"})
        for folder in [whole, *(self.tmp / name for name, _, _ in KILLS)]:
            folder.mkdir()
        results = run_jobs(self.tmp, jobs)
        self.assertEqual(results[0]["code"], 0, results[0]["log"])
        reference = torch.load(whole / "model.pt", weights_only=True)
        self.assertTrue(reference["training"]["finished"])
        self.assertEqual(len((whole / "tl.txt").read_text().splitlines()), 11)
        for i, (name, _, resumed_from) in enumerate(KILLS):
            killed, resumed = results[1 + 2 * i], results[2 + 2 * i]
            self.assertEqual(killed["signal"], signal.SIGKILL, f"{name}: {killed['log'][-500:]}")
            self.assertEqual(resumed["code"], 0, f"{name}: {resumed['log'][-1500:]}")
            if resumed_from is None:
                self.assertIn("no save at", resumed["log"], name)
            else:
                self.assertIn(f"saved after batch {resumed_from} of 32", resumed["log"], name)
            folder = self.tmp / name
            for file in ("tl.txt", "vl.txt", "m.txt"):
                self.assertEqual((folder / file).read_bytes(), (whole / file).read_bytes(), f"{name}: {file}")
            self.assertEqual(sorted(p.name for p in folder.iterdir()), ["m.txt", "model.pt", "tl.txt", "vl.txt"],
                             f"{name}: a temporary file was left")
            final = torch.load(folder / "model.pt", weights_only=True)
            self.assertSameTensors(final["state_dict"], reference["state_dict"], f"{name}: state_dict")
            for key in ("optimizer", "rng", "train_losses", "valid_losses", "next_batch", "finished"):
                self.assertSameTensors(final["training"][key], reference["training"][key], f"{name}: {key}")


class ResumeCommandTest(TempDirCase):
    def train(self, *extra, folder=None):
        folder = folder or self.tmp
        return run_main(rnn.main, *SMALL, "--num_sequences", "16", *outputs(folder), *extra)

    def test_a_resume_that_differs_from_the_saved_run_names_the_first_difference(self):
        code, _, err = self.train()
        self.assertEqual(code, 0, err)
        files = {p.name: p.read_bytes() for p in self.tmp.iterdir()}
        other_valid = self.tmp / "other_valid.json"
        data = json.loads(TINY_VALID.read_text())
        other_valid.write_text(json.dumps(data[::-1]))
        cases = [(["--hidden_dim", "32", "--seed", "3"], "was saved by a run with --hidden_dim 16, this command has "
                                                         "--hidden_dim 32"),
                 (["--batch_size", "2"], "--batch_size 4, this command has --batch_size 2"),
                 (["--val_data", other_valid], f"--val_data {other_valid} is not the file"),
                 (["--seed", "3"], "--seed 10601, this command has --seed 3")]
        for extra, needle in cases:
            code, _, err = self.train("--resume", *extra)
            line = TempDirCase.assertOneLineError(self, code, err, "--resume: ", needle)
            self.assertIn(str(self.tmp / "model.pt"), line)
        self.assertEqual({p.name: p.read_bytes() for p in self.tmp.iterdir() if p.name in files}, files)

    def test_resuming_a_finished_run_trains_nothing_and_writes_its_files_again(self):
        code, _, err = self.train()
        self.assertEqual(code, 0, err)
        files = {name: (self.tmp / name).read_bytes() for name in ("tl.txt", "vl.txt", "m.txt", "model.pt")}
        for name in ("tl.txt", "vl.txt", "m.txt"):
            (self.tmp / name).unlink()
        code, out, err = self.train("--resume")
        self.assertEqual(code, 0, err)
        self.assertIn("finished earlier", out)
        self.assertNotIn("training on", out)
        self.assertEqual({name: (self.tmp / name).read_bytes() for name in files}, files)

    def test_the_final_checkpoint_still_samples_and_loads_as_a_model(self):
        code, _, err = self.train()
        self.assertEqual(code, 0, err)
        lm, checkpoint = rnn.load_checkpoint(self.tmp / "model.pt")
        self.assertEqual(checkpoint["training"]["finished"], True)
        self.assertEqual(lm.config["hidden_dim"], 16)
        code, out, err = run_main(rnn.main, "--checkpoint", self.tmp / "model.pt", "--prompt", "Once upon a time",
                                  "--num_tokens", "4", "--temperature", "0")
        self.assertEqual(code, 0, err)
        self.assertIn("--- temperature 0, sample 1:", out)

    def test_a_checkpoint_without_training_state_cannot_be_resumed(self):
        torch.save(rnn.checkpoint_dict(rnn.RNNLanguageModel(8, 16, 1024, 8, 8)), self.tmp / "model.pt")
        code, _, err = self.train("--resume")
        self.assertOneLineError(code, err, f"--checkpoint {self.tmp / 'model.pt'}", "no training state")

    def test_resume_and_force_flags_that_cannot_work(self):
        for argv, needle in (([*SMALL, "--metrics_out", self.tmp / "m.txt", "--resume"], "--resume needs --checkpoint"),
                             ([*SMALL, "--resume", "--force"], "give one"),
                             ([*SMALL, "--metrics_out", self.tmp / "m.txt", "--force"], "--force has no effect with "
                                                                                        "--metrics_out"),
                             (["--checkpoint", "m.pt", "--prompt", "Hi", "--resume"], "--resume has no effect")):
            code, _, err = run_main(rnn.main, *argv)
            self.assertEqual(code, 2, err)
            self.assertOneLineError(code, err, needle)
        self.assertEqual(list(self.tmp.iterdir()), [])

    def test_ctrl_c_without_a_checkpoint_writes_nothing_and_says_so(self):
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt
        saved, rnn.train = rnn.train, interrupted
        try:
            code, _, err = run_main(rnn.main, *SMALL, *outputs(self.tmp)[:6])
        finally:
            rnn.train = saved
        self.assertEqual(code, 130)
        self.assertEqual(err.strip().splitlines(), ["rnn.py: interrupted; no output written"])
        self.assertEqual(list(self.tmp.iterdir()), [])


class RunFolderTest(TempDirCase):
    """No output flags: runs/NAME/ in the current folder, here a folder outside the kit."""

    NAME = "e8_h16_k8_v8_b4_n16_s10601_tiny_train_stories_tiny_valid_stories"

    def setUp(self):
        super().setUp()
        self.cwd = os.getcwd()
        os.chdir(self.tmp)

    def tearDown(self):
        os.chdir(self.cwd)
        super().tearDown()

    def train(self, *extra):
        # Relative data paths that are not here: the kit's own data/ (and my_tokenizer/) are used.
        return run_main(rnn.main, "--train_data", "data/tiny_train_stories.json", "--val_data",
                        "data/tiny_valid_stories.json", *SMALL[4:], "--num_sequences", "16", *extra)

    def test_outputs_go_to_a_folder_named_by_the_settings_and_a_finished_run_is_kept(self):
        code, out, err = self.train()
        self.assertEqual(code, 0, err)
        folder = self.tmp / "runs" / self.NAME
        self.assertIn(f"outputs go to runs/{self.NAME}/", out)
        self.assertEqual(sorted(p.name for p in folder.iterdir()),
                         ["metrics.txt", "model.pt", "train_losses.txt", "val_losses.txt"])
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["runs"])
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        code, _, err = self.train()
        self.assertOneLineError(code, err, f"runs/{self.NAME}", "finished run", "--force")
        self.assertEqual({p.name: p.read_bytes() for p in folder.iterdir()}, files)
        code, out, err = self.train("--force")
        self.assertEqual(code, 0, err)
        self.assertIn("training on", out)
        for name in ("metrics.txt", "train_losses.txt", "val_losses.txt"):  # the same command, the same numbers
            self.assertEqual((folder / name).read_bytes(), files[name])

    def test_an_unfinished_run_there_is_continued_with_resume_not_started_over(self):
        # 16 sequences in 4 batches, a point (and a save) after each; Ctrl-C after the second save.
        original, saves = kit.runs.atomic_write, []

        def atomic_write(path, write):
            original(path, write)
            saves.append(path)
            if len(saves) == 2:
                raise KeyboardInterrupt
        kit.runs.atomic_write = atomic_write
        try:
            code, _, err = self.train()
        finally:
            kit.runs.atomic_write = original
        folder = self.tmp / "runs" / self.NAME
        self.assertEqual(code, 130, err)
        self.assertIn(f"runs/{self.NAME}/model.pt holds the run, saved after batch 1 of 4", err)
        self.assertEqual(sorted(p.name for p in folder.iterdir()), ["model.pt"])
        code, _, err = self.train()
        self.assertOneLineError(code, err, f"runs/{self.NAME}", "unfinished run", "saved after batch 1 of 4",
                                "--resume", "--force")
        code, out, err = self.train("--resume")
        self.assertEqual(code, 0, err)
        self.assertIn(f"--resume: continuing runs/{self.NAME}/model.pt, saved after batch 1 of 4 (2 points", out)
        self.assertEqual(len((folder / "train_losses.txt").read_text().splitlines()), 4)


SOURCE_STORIES = [f"Story {i}. Tom had {i} red balls and a big blue box. \"Look!\" said Sue, and they ran to the "
                  f"park to play in the sun all day, and then they went home." + " It was fun." * (i % 5)
                  for i in range(90)]


class DefaultDataTest(TempDirCase):
    """Data flags left at their defaults: built on the first run when missing (here into a
    stand-in for the kit's data/, from a stand-in for the shared sample)."""

    def setUp(self):
        super().setUp()
        self.saved = kit.data.DATA_DIR, prepare_data.DEFAULT_SOURCE, prepare_data.download_source
        kit.data.DATA_DIR = self.tmp / "data"
        prepare_data.DEFAULT_SOURCE = self.tmp / "TinyStories-sample.txt"

    def tearDown(self):
        kit.data.DATA_DIR, prepare_data.DEFAULT_SOURCE, prepare_data.download_source = self.saved
        super().tearDown()

    def train(self):
        return run_main(rnn.main, *SMALL[4:], "--num_sequences", "8", "--train_losses_out", self.tmp / "tl.txt",
                        "--val_losses_out", self.tmp / "vl.txt", "--metrics_out", self.tmp / "m.txt")

    def test_a_first_run_builds_the_data_says_so_in_one_line_and_trains(self):
        prepare_data.DEFAULT_SOURCE.write_text("".join(s + "\n<|endoftext|>\n" for s in SOURCE_STORIES))
        code, out, err = self.train()
        self.assertEqual(code, 0, err)
        said = [line for line in out.splitlines() if "building" in line or line.startswith(("splits", "train:"))]
        self.assertEqual(len(said), 1, out)
        self.assertIn(f"are not built yet: building them from {prepare_data.DEFAULT_SOURCE}", said[0])
        for name in ("train_stories.json", "valid_stories.json", "prepared.json"):
            self.assertTrue((self.tmp / "data" / name).is_file(), name)
        windows = json.loads((self.tmp / "data" / "train_stories.json").read_text())
        self.assertEqual({len(w) for w in windows}, {128})  # prepare_data's default windows
        self.assertTrue((self.tmp / "m.txt").is_file())
        code, out, err = self.train()
        self.assertEqual(code, 0, err)
        self.assertNotIn("building", out)

    def test_no_source_and_no_network_is_one_line_that_says_what_to_run(self):
        import functools
        from tests.test_prepare_data import closed_port_url
        prepare_data.download_source = functools.partial(self.saved[2], url=closed_port_url())
        code, _, err = self.train()
        self.assertOneLineError(code, err, "--train_data", "train_stories.json", "could not download",
                                "python3 prepare_data.py --source PATH")
        self.assertFalse((self.tmp / "m.txt").exists())
