"""The program check with --fresh SEED: tiny data drawn from the seed (grader/tiny_program.py's
``fresh_tiny_data``) are real tiny stories' token ids in the committed data's shape, the same
for a seed and different between seeds; the kit's run of the tiny command in the runner's
process (``reference_run``) reproduces data/tiny_reference.json on the committed data, and
leaves the runner's torch threads, RNG and output as they were; on fresh data its points are
not the published ones; the literal completion passes the fresh check, and a file that only
writes the published numbers passes the stored check but fails the fresh one. Six tiny
training runs in all (about 5 to 10 s each on 2 shared cores)."""

import contextlib
import hashlib
import io
import json
import unittest
from pathlib import Path

import torch

from grader import tiny_program
from kit import tiny
from tests.helpers import REPO, TINY_TRAIN, TINY_VALID, tokenizer

PRINTS_REFERENCE = Path(__file__).resolve().parent / "hostile_tiny" / "prints_reference.py"
SEEDS = (7, 2024)
# sha256 of json.dumps(fresh_tiny_data(7)): the draw is Python's random.Random, the same on any
# machine and with either torch; a change to how fresh data are drawn changes it (update it then).
SEED_7_DIGEST = "8993b469cbbd013166cc2beb6b6f09586a8d824a4d9c60138f5f9a983e9ca880"


def digest(data):
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def gap_to_stored(train_losses, val_losses):
    return tiny.worst_point(train_losses, val_losses, tiny.reference())[4]


class FreshTinyData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stories = tiny_program.tiny_stories()
        cls.committed = (json.loads(TINY_TRAIN.read_text()), json.loads(TINY_VALID.read_text()))

    def test_the_stories_read_back_are_the_kit_tokenizer_s_stories(self):
        # Every whole story read back from the committed windows is one of the untokenized tiny
        # stories as my_tokenizer tokenizes it; the one cut short is the start of one.
        tok = tokenizer()
        for split, stories in self.stories.items():
            texts = json.loads((REPO / "data" / f"untokenized_tiny_{split}_stories.json").read_text(encoding="utf-8"))
            real = [list(ids) for ids in tok(texts, add_special_tokens=True)["input_ids"]]
            self.assertEqual(len(stories), len(real), split)
            *whole, short = stories
            for story in whole:
                self.assertIn(story, real, split)
            self.assertTrue(any(story[:len(short) - 1] == short[:-1] and len(story) > len(short) for story in real),
                            f"{split}: the story cut short is not the start of a tiny story")
            self.assertEqual(len({tuple(s) for s in whole}), len(whole), f"{split}: a story read twice")

    def test_the_same_seed_gives_the_same_data(self):
        self.assertEqual(tiny_program.fresh_tiny_data(SEEDS[0]), tiny_program.fresh_tiny_data(SEEDS[0], self.stories))

    def test_the_seed_7_data_are_pinned(self):
        # Deterministic across processes, machines and torch versions (both venvs run this test).
        data = tiny_program.fresh_tiny_data(7, self.stories)
        self.assertEqual(digest(data), SEED_7_DIGEST)

    def test_two_seeds_give_different_data_and_neither_is_the_committed(self):
        a, b = (tiny_program.fresh_tiny_data(seed, self.stories) for seed in SEEDS)
        for split in (0, 1):
            self.assertNotEqual(a[split], b[split])
            self.assertNotEqual(a[split][0], b[split][0], "the first window (valid: the one validated on) moves")
            for data in (a, b):
                self.assertNotEqual(data[split], self.committed[split])

    def test_fresh_data_have_the_committed_data_s_shape_and_tokens(self):
        vocab = len(tokenizer())
        for seed in (*SEEDS, 0, 2 ** 63 - 1):
            data = tiny_program.fresh_tiny_data(seed, self.stories)
            streams = tiny_program.fresh_streams(seed, self.stories)
            for split, (windows, committed) in enumerate(zip(data, self.committed)):
                name = ("train", "valid")[split]
                self.assertEqual(len(windows), len(committed), (seed, name))
                self.assertEqual({len(w) for w in windows}, {tiny_program.SEQ_LEN}, (seed, name))
                self.assertTrue(all(type(x) is int and 0 <= x < vocab for w in windows for x in w), (seed, name))
                self.assertTrue(all(windows[j][-1] == windows[j + 1][0] for j in range(len(windows) - 1)),
                                "neighbours share one token, as prepare_data.py cuts them")
                self.assertEqual(tiny_program.stream_of(windows), streams[name][:len(tiny_program.stream_of(windows))])
                # The stream is the committed one's tokens in another order, and one </s> more.
                committed_stream = tiny_program.stream_of(committed)
                self.assertEqual(sorted(streams[name]), sorted(committed_stream + [tiny_program.EOS_ID]))
        self.assertEqual((len(self.committed[0]), len(self.committed[1])), (201, 47))

    def test_program_inputs_without_a_seed_are_the_stored_data_and_reference(self):
        with tiny_program.program_inputs(None) as (files, reference):
            self.assertEqual(files, tiny_program.FILES)
            self.assertEqual(reference, tiny.reference())


class ReferenceRun(unittest.TestCase):
    def test_on_the_stored_data_it_reproduces_the_reference_and_leaves_the_runner_as_it_was(self):
        torch.manual_seed(123)
        before = torch.get_num_threads()
        torch.set_num_threads(3)  # not 1, the run's, so a count left at 1 shows
        try:
            rng = torch.get_rng_state()
            shown = io.StringIO()
            with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
                train_losses, val_losses = tiny_program.reference_run(TINY_TRAIN, TINY_VALID)
            threads = torch.get_num_threads()
        finally:
            torch.set_num_threads(before)
        kind, i, got, expected, gap = tiny.worst_point(train_losses, val_losses, tiny.reference())
        self.assertTrue(tiny.matches(gap), f"{kind} point {i}: {got} vs data/tiny_reference.json's {expected}")
        self.assertEqual(shown.getvalue(), "", "the kit's run printed into the runner's report")
        self.assertEqual(threads, 3, "the run's thread count leaked into the runner")
        self.assertTrue(torch.equal(torch.get_rng_state(), rng), "the runner's torch RNG was moved")

    def test_on_fresh_data_its_points_are_not_the_published_ones(self):
        published = {name: REPO.joinpath("data", name).read_text(encoding="utf-8")
                     for name in tiny.OUTPUTS.values()}
        points, folders = {}, []
        for seed in SEEDS:
            with tiny_program.program_inputs(seed) as (files, reference):
                self.assertEqual(set(files), set(tiny_program.FILES))
                self.assertEqual(files["my_tokenizer"], tiny_program.FILES["my_tokenizer"])
                self.assertEqual(tuple(json.loads(files[tiny.DATA[k]].read_text()) for k in ("train", "val")),
                                 tiny_program.fresh_tiny_data(seed))
                folders.append(files[tiny.DATA["train"]].parent.parent)
                self.assertGreater(gap_to_stored(reference["train_losses"], reference["val_losses"]), tiny.TOLERANCE)
                self.assertIsNotNone(tiny.compare_files(published, reference))
                points[seed] = reference["train_losses"] + reference["val_losses"]
            self.assertEqual(len(points[seed]), len(tiny.reference()["train_losses"]) * 2)
        self.assertFalse(any(folder.exists() for folder in folders), "program_inputs left its folder behind")
        self.assertGreater(max(abs(a - b) for a, b in zip(*points.values())), tiny.TOLERANCE)


class FreshProgramCheck(unittest.TestCase):
    # The literal completion's run on fresh tiny data is tests/test_grader.py's, through run_autograder.
    def test_writing_the_published_numbers_passes_only_without_a_seed(self):
        stored = tiny_program.run(PRINTS_REFERENCE)
        self.assertTrue(stored["ok"], f"the hostile file should pass on the stored data: {stored['message']}")
        fresh = tiny_program.run(PRINTS_REFERENCE, seed=SEEDS[1])
        self.assertFalse(fresh["ok"])
        self.assertIn("the kit's run has", fresh["message"])


if __name__ == "__main__":
    unittest.main()
