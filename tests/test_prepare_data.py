"""prepare_data.py: fixed-length windows, seeded splits, manifests that notice stale data,
the tiny fixtures, the hub fallback, and one-line errors for bad input."""

import json
import shutil
import socket
import time
import unittest

import prepare_data
from tests.helpers import REPO, TempDirCase, run_main, tokenizer

SOURCE_STORIES = [f"Story {i}. Tom had {i} red balls.\n\"Look!\" said Sue. They played in the sun all day."
                  + (" It was fun." * (i % 7) * 6) for i in range(36)]


def source_text(stories):
    return "".join(s + "\n<|endoftext|>\n" for s in stories)


class WindowsTest(unittest.TestCase):
    def test_windows_by_hand(self):
        # Windows of 4 share one token: 0-3, 3-6, 6-9; 10 is a tail too short for another.
        self.assertEqual(prepare_data.windows(list(range(11)), 4), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
        self.assertEqual(prepare_data.windows(list(range(3)), 4), [])

    def test_every_next_token_pair_is_a_target_once(self):
        stream = list(range(1000))
        pieces = prepare_data.windows(stream, 128)
        self.assertTrue(all(len(p) == 128 for p in pieces))
        pairs = [(p[i], p[i + 1]) for p in pieces for i in range(len(p) - 1)]
        self.assertEqual(pairs, [(i, i + 1) for i in range(len(pairs))])
        self.assertEqual(len(pairs), 7 * 127)  # 999 pairs: seven windows, a tail of 110 dropped


class PrepareDataTest(TempDirCase):
    def setUp(self):
        super().setUp()
        self.source = self.tmp / "stories.txt"
        self.source.write_text(source_text(SOURCE_STORIES), encoding="utf-8")
        self.out = self.tmp / "data"

    def build(self, *extra, out=None):
        return run_main(prepare_data.main, "--source", self.source, "--out_dir", out or self.out,
                        "--seq_len", "40", *extra)

    def test_builds_fixed_length_windows_of_the_seeded_story_stream(self):
        code, out, err = self.build()
        self.assertEqual(code, 0, err)
        for split, n_stories in (("train", 33), ("valid", 3)):
            seqs = json.loads((self.out / f"{split}_stories.json").read_text())
            raw = json.loads((self.out / f"untokenized_{split}_stories.json").read_text(encoding="utf-8"))
            self.assertEqual(sorted(raw), sorted(s for s in SOURCE_STORIES if s in raw))
            self.assertEqual(len(raw), n_stories)
            self.assertTrue(all(len(s) == 40 for s in seqs))
            # Joined back (each window after the first starts with the previous one's last
            # token), the windows are the stories' ids in the order of the untokenized file.
            stream = seqs[0] + [x for s in seqs[1:] for x in s[1:]]
            expected = [x for story in raw for x in tokenizer().encode(story)]
            self.assertEqual(stream, expected[:len(stream)])
            self.assertLess(len(expected) - len(stream), 39)  # only a tail shorter than a window is dropped
        self.assertIn("sequences of 40 tokens", out)
        manifest = json.loads((self.out / "prepared.json").read_text())
        self.assertEqual(manifest["built_from"]["options"]["seq_len"], 40)
        self.assertEqual(manifest["built_from"]["source_size"], self.source.stat().st_size)

    def test_split_and_order_are_deterministic_and_seeded(self):
        a, b, c = self.tmp / "a", self.tmp / "b", self.tmp / "c"
        self.build(out=a)
        self.build(out=b)
        self.build("--seed", "1", out=c)
        for name in ("train_stories.json", "valid_stories.json"):
            self.assertEqual((a / name).read_bytes(), (b / name).read_bytes())
        self.assertNotEqual((a / "train_stories.json").read_bytes(), (c / "train_stories.json").read_bytes())

    def test_rerun_skips_what_is_up_to_date_and_force_redoes_it(self):
        self.build()
        stamp = (self.out / "train_stories.json").stat().st_mtime_ns
        code, out, _ = self.build()
        self.assertIn("up to date", out)
        self.assertEqual((self.out / "train_stories.json").stat().st_mtime_ns, stamp)
        code, out, _ = self.build("--force")
        self.assertIn("rebuilding: --force", out)
        self.assertNotEqual((self.out / "train_stories.json").stat().st_mtime_ns, stamp)

    def check_rebuilds(self, reason, *extra):
        code, out, err = self.build(*extra)
        self.assertEqual(code, 0, err)
        lines = [line for line in out.splitlines() if "rebuilding" in line]
        self.assertEqual(len(lines), 1, out)
        self.assertIn(reason, lines[0])
        self.assertNotIn("up to date", out)

    def test_a_grown_source_is_rebuilt_and_says_why(self):
        self.build()
        self.source.write_text(source_text(SOURCE_STORIES + ["Sue found a new ball. She was happy."]),
                               encoding="utf-8")
        self.check_rebuilds("the source size changed")
        train = json.loads((self.out / "untokenized_train_stories.json").read_text(encoding="utf-8"))
        valid = json.loads((self.out / "untokenized_valid_stories.json").read_text(encoding="utf-8"))
        self.assertIn("Sue found a new ball. She was happy.", train + valid)

    def test_a_same_size_edit_of_the_source_is_noticed(self):
        self.build()
        text = source_text(SOURCE_STORIES)
        self.source.write_text(text.replace("Tom had 3", "Tim had 3"), encoding="utf-8")
        self.check_rebuilds("the source sha256 changed")

    def test_a_changed_option_or_tokenizer_or_missing_output_is_rebuilt(self):
        self.build()
        self.check_rebuilds("the options changed", "--num_valid", "2")
        tok = self.tmp / "tok"
        shutil.copytree(REPO / "my_tokenizer", tok)
        config = json.loads((tok / "tokenizer_config.json").read_text())
        (tok / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 5000}))
        self.check_rebuilds("the tokenizer sha256 changed", "--num_valid", "2", "--tokenizer", tok)
        (self.out / "valid_stories.json").unlink()
        self.check_rebuilds("valid_stories.json does not exist", "--num_valid", "2", "--tokenizer", tok)

    def test_committed_tiny_data_is_up_to_date_with_its_stories_and_tokenizer(self):
        data = REPO / "data"
        wanted = json.loads((data / "tiny_manifest.json").read_text())["built_from"]
        self.assertEqual(wanted["stories_sha256"], prepare_data.sha256_of(
            data / "untokenized_tiny_train_stories.json", data / "untokenized_tiny_valid_stories.json"))
        self.assertEqual(wanted["tokenizer_sha256"], prepare_data.tokenizer_hash(REPO / "my_tokenizer"))

    def test_tiny_flag_rebuilds_the_committed_tiny_files(self):
        self.out.mkdir()
        for split in ("train", "valid"):
            shutil.copy(REPO / "data" / f"untokenized_tiny_{split}_stories.json", self.out)
        code, out, err = run_main(prepare_data.main, "--tiny", "--out_dir", self.out)
        self.assertEqual(code, 0, err)
        for name in ("tiny_train_stories.json", "tiny_valid_stories.json", "tiny_manifest.json"):
            self.assertEqual((self.out / name).read_bytes(), (REPO / "data" / name).read_bytes(), name)
        # The tiny command trains on 128 sequences at batch size 1.
        self.assertGreaterEqual(len(json.loads((self.out / "tiny_train_stories.json").read_text())), 128)

    # ------------------------------------------------------------------------- bad input

    def assertFailsCleanly(self, result, *needles):
        code, _, err = result
        self.assertOneLineError(code, err, *needles)
        self.assertEqual(list(self.out.iterdir()) if self.out.exists() else [], [])

    def test_missing_source(self):
        missing = self.tmp / "nope.txt"
        self.assertFailsCleanly(run_main(prepare_data.main, "--source", missing, "--out_dir", self.out),
                                missing, "no such file")

    def test_empty_source(self):
        self.source.write_text("", encoding="utf-8")
        self.assertFailsCleanly(self.build(), self.source, "empty")

    def test_unreadable_source(self):
        self.source.write_bytes(b"Tom \xff\xfe ran.\n<|endoftext|>\n")
        self.assertFailsCleanly(self.build(), self.source, "utf-8")
        self.assertFailsCleanly(run_main(prepare_data.main, "--source", self.tmp, "--out_dir", self.out),
                                self.tmp, "not a file")

    def test_source_without_separators(self):
        self.source.write_text("Tom ran.\nSue sat.\n", encoding="utf-8")
        self.assertFailsCleanly(self.build(), self.source, "<|endoftext|>")

    def test_single_story_source(self):
        self.source.write_text("Tom ran.\n<|endoftext|>\n", encoding="utf-8")
        self.assertFailsCleanly(self.build(), self.source, "at least 2")

    def test_source_shorter_than_one_window(self):
        self.source.write_text(source_text(["Tom ran.", "Sue sat."]), encoding="utf-8")
        self.assertFailsCleanly(self.build(), "fewer than one window", "--seq_len 40")

    def test_out_dir_that_is_a_file(self):
        afile = self.tmp / "afile"
        afile.write_text("x")
        code, _, err = self.build(out=afile)
        self.assertOneLineError(code, err, afile, "is a file")

    def test_missing_tokenizer_folder(self):
        missing = self.tmp / "no_tokenizer"
        self.assertFailsCleanly(self.build("--tokenizer", missing), missing)

    def test_tokenizer_with_wrong_vocabulary_size(self):
        bad = self.tmp / "bad_tokenizer"
        shutil.copytree(REPO / "my_tokenizer", bad)
        spec = json.loads((bad / "tokenizer.json").read_text(encoding="utf-8"))
        spec["model"]["vocab"] = spec["model"]["vocab"][:1000]
        (bad / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
        self.assertFailsCleanly(self.build("--tokenizer", bad), bad, "1024")

    def test_bad_option_values(self):
        for flag, value in (("--seq_len", "1"), ("--num_untokenized", "-1"), ("--num_valid", "0")):
            code, _, err = self.build(flag, value)
            self.assertEqual(code, 2)
            self.assertOneLineError(code, err, flag)


def closed_port_url():
    """A URL on this machine where nothing listens: the connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/TinyStories-valid.txt"


class HubFallbackTest(TempDirCase):
    def test_no_network_is_one_attempt_and_one_line_fast(self):
        start = time.perf_counter()
        with self.assertRaisesRegex(prepare_data.DataError, "pass --source PATH"):
            prepare_data.download_source(self.tmp, url=closed_port_url())
        self.assertLess(time.perf_counter() - start, 5)
        self.assertEqual(list(self.tmp.iterdir()), [])

    def test_command_line_without_the_sample_says_pass_source(self):
        saved = prepare_data.DEFAULT_SOURCE, prepare_data.HUB_URL
        prepare_data.DEFAULT_SOURCE, prepare_data.HUB_URL = self.tmp / "absent.txt", closed_port_url()
        try:
            start = time.perf_counter()
            code, out, err = run_main(prepare_data.main, "--out_dir", self.tmp / "data")
        finally:
            prepare_data.DEFAULT_SOURCE, prepare_data.HUB_URL = saved
        self.assertLess(time.perf_counter() - start, 5)
        self.assertOneLineError(code, err, "absent.txt not found", "could not download", "pass --source PATH")
        self.assertEqual(out, "")  # the error is the only line
        self.assertFalse((self.tmp / "data").exists() and any((self.tmp / "data").iterdir()))
