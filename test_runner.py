"""The kit's tests: ``python3 test_runner.py`` runs them all, ``-k PATTERN`` a subset.

Expected values come from hand computation, an independent formula (plain ``math``
loops, not the code under test) or the handout. The last line printed is
``N passed, N failed``; the exit code is 0 only when every test passes.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch

import prepare_data
import rnn

REPO = Path(__file__).resolve().parent
TINY_TRAIN = REPO / "data" / "tiny_train_stories.json"
TINY_VALID = REPO / "data" / "tiny_valid_stories.json"
TINY_ARGS = ["--embed_dim", "64", "--hidden_dim", "128", "--dk", "32", "--dv", "32",
             "--num_sequences", "128", "--batch_size", "1"]

_TOKENIZER = None


def tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = rnn.load_tokenizer(REPO / "my_tokenizer")
    return _TOKENIZER


def run_script(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def set_weight(linear, rows):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(rows, dtype=linear.weight.dtype))


def small_model(vocab=11, embed=3, hidden=4, dk=2, dv=3, activation="tanh", seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return rnn.RNNLanguageModel(vocab, embed, hidden, dk, dv, activation).to(dtype)


# ============================================================================= tokenizer

class TestTokenizer(unittest.TestCase):
    def test_vocabulary_has_1024_pieces(self):
        self.assertEqual(len(tokenizer()), 1024)

    def test_special_ids_are_pad_0_eos_1_unk_2(self):
        ids = [tokenizer().convert_tokens_to_ids(t) for t in ("<pad>", "</s>", "<unk>")]
        self.assertEqual(ids, [0, 1, 2])

    def test_handout_example_encode_appends_eos_and_decode_shows_it(self):
        ids = tokenizer().encode("We like ML.")
        self.assertEqual(ids[-1], 1)
        self.assertEqual(tokenizer().decode(ids), "We like ML.</s>")

    def test_loads_with_autotokenizer_from_the_folder_name(self):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(str(REPO / "my_tokenizer"))
        self.assertEqual(tok.decode(tok.encode("We like ML.")), "We like ML.</s>")

    def test_fixture_stories_round_trip(self):
        stories = json.loads((REPO / "data" / "untokenized_tiny_train_stories.json").read_text(encoding="utf-8"))
        for story in stories[:10]:
            ids = tokenizer().encode(story)
            self.assertEqual(tokenizer().decode(ids, skip_special_tokens=True), story)

    def test_normalisation_maps_typographic_quotes_and_dashes_to_ascii(self):
        text = "\u201cHi,\u201d she said \u2013 it\u2019s fine\u2026"
        ids = tokenizer().encode(text, add_special_tokens=False)
        self.assertEqual(tokenizer().decode(ids), "\"Hi,\" she said - it's fine...")


# ============================================================================= data script

SOURCE_STORIES = [f"Story {i}. Tom had {i} red balls.\n\"Look!\" said Sue. They played in the sun all day."
                  + (" It was fun." * (i % 7) * 6) for i in range(36)]


class TestPrepareData(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.source = self.tmp / "stories.txt"
        self.source.write_text("".join(s + "\n<|endoftext|>\n" for s in SOURCE_STORIES), encoding="utf-8")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def build(self, out, *extra):
        return run_script("prepare_data.py", "--source", self.source, "--out_dir", out, "--max_len", "40", *extra)

    def test_builds_all_outputs_with_documented_shapes(self):
        out = self.tmp / "data"
        r = self.build(out)
        self.assertEqual(r.returncode, 0, r.stderr)
        for split, n_stories in (("train", 33), ("valid", 3)):
            seqs = json.loads((out / f"{split}_stories.json").read_text())
            raw = json.loads((out / f"untokenized_{split}_stories.json").read_text(encoding="utf-8"))
            self.assertEqual(len(raw), n_stories)
            self.assertTrue(all(isinstance(s, str) and s in SOURCE_STORIES for s in raw))
            self.assertTrue(all(isinstance(s, list) and 2 <= len(s) <= 40 for s in seqs))
            self.assertTrue(all(type(x) is int and 0 <= x < 1024 for s in seqs for x in s))
            # Every story ends in </s>, and </s> appears nowhere else.
            self.assertEqual(sum(x == 1 for s in seqs for x in s), n_stories)
        self.assertIn("pad share at batch 128", r.stdout)
        self.assertIn("example", r.stdout)

    def test_split_is_deterministic_and_seeded(self):
        a, b, c = self.tmp / "a", self.tmp / "b", self.tmp / "c"
        self.build(a)
        self.build(b)
        self.build(c, "--seed", "1")
        for name in ("train_stories.json", "valid_stories.json"):
            self.assertEqual((a / name).read_bytes(), (b / name).read_bytes())
        self.assertNotEqual((a / "valid_stories.json").read_bytes(), (c / "valid_stories.json").read_bytes())

    def test_rerun_skips_finished_work_and_force_redoes_it(self):
        out = self.tmp / "data"
        self.build(out)
        stamp = (out / "train_stories.json").stat().st_mtime_ns
        r = self.build(out)
        self.assertIn("skipped", r.stdout)
        self.assertEqual((out / "train_stories.json").stat().st_mtime_ns, stamp)
        r = self.build(out, "--force")
        self.assertNotIn("skipped", r.stdout)
        self.assertNotEqual((out / "train_stories.json").stat().st_mtime_ns, stamp)

    def test_cut_keeps_every_next_token_pair_once(self):
        ids = list(range(10))
        # 9 pairs, at most 3 per piece of 4 tokens: three pieces sharing their end tokens.
        self.assertEqual(prepare_data.cut(ids, 4), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
        self.assertEqual(prepare_data.cut(ids, 10), [ids])
        pieces = prepare_data.cut(list(range(300)), 128)
        pairs = [(p[i], p[i + 1]) for p in pieces for i in range(len(p) - 1)]
        self.assertEqual(pairs, [(i, i + 1) for i in range(299)])
        self.assertTrue(all(len(p) <= 128 for p in pieces))

    def test_pad_share_by_hand(self):
        # A batch of one never pads.
        self.assertEqual(prepare_data.pad_share([[0] * 2, [0] * 4], batch_size=1), 0.0)
        # Lengths 2 and 4, batches of 2 drawn uniformly: 6 real tokens a batch on average;
        # padded size 2 * max is 4 with probability 1/4 and 8 with 3/4, so 7; share 1 - 6/7.
        share = prepare_data.pad_share([[0] * 2, [0] * 4], batch_size=2, num_batches=20000)
        self.assertAlmostEqual(share, 1 - 6 / 7, delta=0.01)

    def test_tiny_flag_rebuilds_the_committed_tiny_files(self):
        out = self.tmp / "data"
        out.mkdir()
        for split in ("train", "valid"):
            shutil.copy(REPO / "data" / f"untokenized_tiny_{split}_stories.json", out)
        r = run_script("prepare_data.py", "--tiny", "--out_dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        for split in ("train", "valid"):
            self.assertEqual(json.loads((out / f"tiny_{split}_stories.json").read_text()),
                             json.loads((REPO / "data" / f"tiny_{split}_stories.json").read_text()))

    def assertFailsCleanly(self, result, *needles):
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for needle in needles:
            self.assertIn(str(needle), lines[0])
        out = self.tmp / "data"
        self.assertEqual(list(out.iterdir()) if out.exists() else [], [])

    def test_missing_source(self):
        missing = self.tmp / "nope.txt"
        self.assertFailsCleanly(run_script("prepare_data.py", "--source", missing, "--out_dir", self.tmp / "data"),
                                missing, "no such file")

    def test_empty_source(self):
        self.source.write_text("", encoding="utf-8")
        self.assertFailsCleanly(self.build(self.tmp / "data"), self.source, "empty")

    def test_unreadable_source(self):
        self.source.write_bytes(b"Tom \xff\xfe ran.\n<|endoftext|>\n")
        self.assertFailsCleanly(self.build(self.tmp / "data"), self.source, "utf-8")
        self.assertFailsCleanly(run_script("prepare_data.py", "--source", self.tmp, "--out_dir", self.tmp / "data"),
                                self.tmp, "not a file")

    def test_source_without_separators(self):
        self.source.write_text("Tom ran.\nSue sat.\n", encoding="utf-8")
        self.assertFailsCleanly(self.build(self.tmp / "data"), self.source, "<|endoftext|>")

    def test_single_story_source(self):
        self.source.write_text("Tom ran.\n<|endoftext|>\n", encoding="utf-8")
        self.assertFailsCleanly(self.build(self.tmp / "data"), self.source, "at least 2")

    def test_out_dir_that_is_a_file(self):
        afile = self.tmp / "afile"
        afile.write_text("x")
        r = self.build(afile)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(str(afile), r.stderr)

    def test_missing_tokenizer_folder(self):
        missing = self.tmp / "no_tokenizer"
        self.assertFailsCleanly(self.build(self.tmp / "data", "--tokenizer", missing), missing)

    def test_tokenizer_with_wrong_vocabulary_size(self):
        bad = self.tmp / "bad_tokenizer"
        shutil.copytree(REPO / "my_tokenizer", bad)
        spec = json.loads((bad / "tokenizer.json").read_text(encoding="utf-8"))
        spec["model"]["vocab"] = spec["model"]["vocab"][:1000]
        (bad / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
        self.assertFailsCleanly(self.build(self.tmp / "data", "--tokenizer", bad), bad, "1024")

    def test_hub_download_failure_says_pass_source(self):
        code = "import prepare_data, sys\ntry:\n    prepare_data.download_source()\nexcept prepare_data.DataError as e:\n    print(e)"
        r = run_script("-c", code, env={"HF_HUB_OFFLINE": "1"})
        self.assertIn("pass --source", r.stdout)


# ============================================================================= model: hand values

class TestRNNCell(unittest.TestCase):
    def test_tanh_by_hand(self):
        cell = rnn.RNNCell(2, 2, "tanh").double()
        set_weight(cell.i2h, [[0.5, -1.0], [0.25, 0.0]])
        set_weight(cell.h2h, [[1.0, 2.0], [-0.5, 0.5]])
        x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
        h = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
        # W_i2h x = (0.5 - 2, 0.25) = (-1.5, 0.25); W_h2h h = (0.1 - 0.4, -0.05 - 0.1) = (-0.3, -0.15)
        got = cell(x, h).tolist()[0]
        self.assertAlmostEqual(got[0], math.tanh(-1.8), places=14)
        self.assertAlmostEqual(got[1], math.tanh(0.1), places=14)

    def test_relu_by_hand(self):
        cell = rnn.RNNCell(2, 2, "relu").double()
        set_weight(cell.i2h, [[0.5, -1.0], [0.25, 0.0]])
        set_weight(cell.h2h, [[1.0, 2.0], [-0.5, 0.5]])
        x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
        h = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
        out = cell(x, h).tolist()[0]
        self.assertEqual(out[0], 0.0)
        self.assertAlmostEqual(out[1], 0.1, places=15)

    def test_has_no_bias_terms(self):
        cell = rnn.RNNCell(3, 4)
        self.assertIsNone(cell.i2h.bias)
        self.assertIsNone(cell.h2h.bias)


class TestRNN(unittest.TestCase):
    def test_forward_by_hand_scalar(self):
        model = rnn.RNN(1, 1).double()
        set_weight(model.cell.i2h, [[0.5]])
        set_weight(model.cell.h2h, [[-2.0]])
        set_weight(model.out, [[3.0]])
        x = torch.tensor([[[1.0], [2.0], [-1.0]]], dtype=torch.float64)
        h1 = math.tanh(0.5)
        h2 = math.tanh(1.0 - 2.0 * h1)
        h3 = math.tanh(-0.5 - 2.0 * h2)
        hiddens, outputs = model(x)
        for got, want in zip(hiddens.flatten().tolist(), [h1, h2, h3]):
            self.assertAlmostEqual(got, want, places=14)
        for got, want in zip(outputs.flatten().tolist(), [3 * h1, 3 * h2, 3 * h3]):
            self.assertAlmostEqual(got, want, places=14)

    def test_step_starts_from_zero_state(self):
        model = rnn.RNN(3, 4).double()
        x = torch.randn(2, 3, dtype=torch.float64)
        h, y = model.step(x, None)
        expected = torch.tanh(x @ model.cell.i2h.weight.T)
        torch.testing.assert_close(h, expected, rtol=0, atol=1e-15)
        torch.testing.assert_close(y, expected @ model.out.weight.T, rtol=0, atol=1e-15)

    def check_forward_matches_steps(self, activation):
        torch.manual_seed(1)
        model = rnn.RNN(3, 5, activation).double()
        x = torch.randn(2, 7, 3, dtype=torch.float64)
        hiddens, outputs = model(x)
        hs, ys = [], []
        for t in range(x.shape[1]):
            h, y = model.step(x[:, t], torch.stack(hs, 1) if hs else None)
            hs.append(h)
            ys.append(y)
        torch.testing.assert_close(hiddens, torch.stack(hs, 1), rtol=0, atol=1e-12)
        torch.testing.assert_close(outputs, torch.stack(ys, 1), rtol=0, atol=1e-12)

    def test_forward_matches_repeated_step_tanh(self):
        self.check_forward_matches_steps("tanh")

    def test_forward_matches_repeated_step_relu(self):
        self.check_forward_matches_steps("relu")

    def test_step_accepts_a_list_of_hidden_states(self):
        model = rnn.RNN(3, 4).double()
        x = torch.randn(2, 3, dtype=torch.float64)
        hs = [torch.randn(2, 4, dtype=torch.float64) for _ in range(3)]
        torch.testing.assert_close(model.step(x, hs)[0], model.step(x, torch.stack(hs, 1))[0])


class TestSelfAttention(unittest.TestCase):
    def test_step_by_hand(self):
        att = rnn.SelfAttention(2, 2, 2).double()
        for lin in (att.query_transform, att.key_transform, att.value_transform, att.output_transform):
            set_weight(lin, [[1.0, 0.0], [0.0, 1.0]])
        set_weight(att.output_transform, [[2.0, 0.0], [0.0, -1.0]])
        y = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]], dtype=torch.float64)
        # q_3 = (1, 1); k = v = y; s = (1, 2, 2) / sqrt(2)
        e = [math.exp(s / math.sqrt(2)) for s in (1.0, 2.0, 2.0)]
        w = [x / sum(e) for x in e]
        mix = [w[0] * 1 + w[1] * 0 + w[2] * 1, w[0] * 0 + w[1] * 2 + w[2] * 1]
        got = att.step(y)[0].tolist()
        self.assertAlmostEqual(got[0], 2 * mix[0], places=14)
        self.assertAlmostEqual(got[1], -mix[1], places=14)

    def test_first_position_attends_only_to_itself(self):
        att = rnn.SelfAttention(4, 3, 2).double()
        y = torch.randn(2, 5, 4, dtype=torch.float64)
        expected = att.value_transform(y[:, 0]) @ att.output_transform.weight.T
        torch.testing.assert_close(att(y)[:, 0], expected, rtol=0, atol=1e-14)

    def test_forward_matches_repeated_step(self):
        torch.manual_seed(2)
        att = rnn.SelfAttention(4, 3, 5).double()
        y = torch.randn(3, 6, 4, dtype=torch.float64)
        steps = torch.stack([att.step(y[:, :t + 1]) for t in range(6)], 1)
        torch.testing.assert_close(att(y), steps, rtol=0, atol=1e-12)

    def test_cached_step_matches_uncached_step(self):
        att = rnn.SelfAttention(4, 3, 5).double()
        y = torch.randn(2, 6, 4, dtype=torch.float64)
        cache = att.new_cache(y[:, :2], capacity=3)  # grows past its capacity on the way
        for t in range(2, 6):
            torch.testing.assert_close(att.step(y[:, t:t + 1], cache), att.step(y[:, :t + 1]), rtol=0, atol=1e-13)


class TestLanguageModel(unittest.TestCase):
    def test_forward_shapes_and_composition(self):
        model = small_model()
        tokens = torch.tensor([[3, 4, 5, 1], [6, 7, 0, 0]])
        logits, hiddens, outputs = model(tokens)
        self.assertEqual(tuple(logits.shape), (2, 4, 11))
        self.assertEqual(tuple(hiddens.shape), (2, 4, 4))
        expected = model.lm_head(model.attention(model.rnn(model.embeddings(tokens))[1]))
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-14)

    def test_logits_by_hand_scalar_model(self):
        model = rnn.RNNLanguageModel(3, 1, 1, 1, 1).double()
        with torch.no_grad():
            model.embeddings.weight.copy_(torch.tensor([[0.5], [1.0], [-1.0]]))
        set_weight(model.rnn.cell.i2h, [[1.0]])
        set_weight(model.rnn.cell.h2h, [[0.5]])
        set_weight(model.rnn.out, [[2.0]])
        for lin in (model.attention.query_transform, model.attention.key_transform,
                    model.attention.value_transform, model.attention.output_transform):
            set_weight(lin, [[1.0]])
        set_weight(model.lm_head, [[1.0], [0.0], [-1.0]])
        # tokens 1, 2: i = 1.0, -1.0
        h1 = math.tanh(1.0)
        h2 = math.tanh(-1.0 + 0.5 * h1)
        y1, y2 = 2 * h1, 2 * h2
        a1 = y1  # one position: weight 1 on itself
        e1, e2 = math.exp(y1 * y2), math.exp(y2 * y2)  # D_key = 1: scores k_n q_2 = y_n y_2
        a2 = (e1 * y1 + e2 * y2) / (e1 + e2)
        logits = model(torch.tensor([[1, 2]]))[0][0].tolist()
        for got, want in zip(logits[0] + logits[1], [a1, 0.0, -a1, a2, 0.0, -a2]):
            self.assertAlmostEqual(got, want, places=13)

    def test_causal_changing_a_later_token_leaves_earlier_logits(self):
        model = small_model()
        a = torch.tensor([[3, 4, 5, 6, 7, 8]])
        for t in range(5):
            b = a.clone()
            b[0, t + 1] = 9
            la, lb = model(a)[0], model(b)[0]
            torch.testing.assert_close(la[:, :t + 1], lb[:, :t + 1], rtol=0, atol=0)
            self.assertFalse(torch.allclose(la[:, t + 1], lb[:, t + 1]))

    def test_uses_no_forbidden_modules(self):
        import ast
        tree = ast.parse((REPO / "rnn.py").read_text(encoding="utf-8"))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        forbidden = {"RNN", "RNNCell", "RNNBase", "LSTM", "GRU", "MultiheadAttention", "scaled_dot_product_attention",
                     "multi_head_attention_forward", "rnn_tanh", "rnn_relu", "rnn_tanh_cell", "rnn_relu_cell"}
        self.assertEqual(used & forbidden, set())


class TestGradients(unittest.TestCase):
    def test_recurrence_gradcheck_tanh(self):
        z = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
        w = (0.5 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_()
        self.assertTrue(torch.autograd.gradcheck(lambda z, w: rnn._Recurrence.apply(z, w, False), (z, w)))

    def test_recurrence_gradcheck_relu(self):
        torch.manual_seed(3)
        z = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
        w = (0.5 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_()
        self.assertTrue(torch.autograd.gradcheck(lambda z, w: rnn._Recurrence.apply(z, w, True), (z, w)))

    def test_attention_gradcheck(self):
        att = rnn.SelfAttention(3, 2, 2).double()
        y = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
        self.assertTrue(torch.autograd.gradcheck(att, (y,)))

    def test_model_gradients_match_the_step_by_step_model(self):
        # The fast forward's gradients for every parameter equal those of the literal loop.
        model = small_model()
        tokens = torch.tensor([[3, 4, 5, 6, 1], [6, 7, 8, 0, 0]])
        loss, n = model.loss(tokens)
        fast = torch.autograd.grad(loss / n, list(model.parameters()))
        x = model.embeddings(tokens)
        hs, ys = [], []
        for t in range(tokens.shape[1]):
            h, y = model.rnn.step(x[:, t], torch.stack(hs, 1) if hs else None)
            hs.append(h)
            ys.append(y)
        y = torch.stack(ys, 1)
        logits = model.lm_head(torch.stack([model.attention.step(y[:, :t + 1]) for t in range(y.shape[1])], 1))
        ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1), ignore_index=0)
        slow = torch.autograd.grad(ref, list(model.parameters()))
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# ============================================================================= loss and training

def log_softmax_at(row, index):
    m = max(row)
    return row[index] - m - math.log(sum(math.exp(v - m) for v in row))


class TestLoss(unittest.TestCase):
    def test_shift_and_padding_by_independent_loop(self):
        model = small_model()
        tokens = torch.tensor([[3, 4, 5, 1, 0, 0], [6, 7, 8, 9, 10, 1]])
        logits = model(tokens)[0].tolist()
        total, count = 0.0, 0
        for b, row in enumerate(tokens.tolist()):
            for t in range(len(row) - 1):  # the last position has no target
                if row[t + 1] != 0:  # pad targets are ignored
                    total -= log_softmax_at(logits[b][t], row[t + 1])
                    count += 1
        loss_sum, n = model.loss(tokens)
        self.assertEqual(int(n), 3 + 5)
        self.assertAlmostEqual(float(loss_sum), total, places=10)

    def test_padding_does_not_change_a_sequence_loss(self):
        model = small_model()
        alone = model.loss(torch.tensor([[3, 4, 5, 1]]))[0].detach()
        padded = model.loss(torch.tensor([[3, 4, 5, 1, 0, 0, 0]]))[0].detach()
        self.assertAlmostEqual(float(alone), float(padded), places=12)

    def test_validate_is_token_weighted_mean_over_the_set(self):
        model = small_model()
        seqs = [torch.tensor([3, 4, 1]), torch.tensor([5, 6, 7, 8, 9, 1]), torch.tensor([2, 1])]
        sums = [float(model.loss(s[None])[0].detach()) for s in seqs]
        expected = sum(sums) / (2 + 5 + 1)
        self.assertAlmostEqual(rnn.validate(model, seqs, batch_size=2), expected, places=12)
        self.assertNotAlmostEqual(expected, sum(s / (len(q) - 1) for s, q in zip(sums, seqs)) / 3, places=3)


class TestTraining(unittest.TestCase):
    def seqs(self):
        return [torch.tensor([3, 4, 5, 1]), torch.tensor([6, 7, 8, 9, 10, 1]), torch.tensor([5, 4, 1])]

    def test_point_loss_is_token_weighted_mean_of_its_tenth(self):
        # lr 0 keeps the weights; 30 sequences in batches of 1 over a set of 3: each tenth
        # is one pass, three batches of different lengths (3, 5 and 2 targets).
        model = small_model()
        seqs = self.seqs()
        sums = [float(model.loss(q[None])[0].detach()) for q in seqs]
        weighted = sum(sums) / (3 + 5 + 2)
        per_batch = sum(x / n for x, n in zip(sums, (3, 5, 2))) / 3
        self.assertGreater(abs(weighted - per_batch), 1e-3)  # the two means differ here
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        losses, vals = rnn.train(model, seqs, seqs[:1], 30, 1, opt, log=lambda s: None)
        self.assertEqual(len(losses), 10)
        for x in losses:
            self.assertAlmostEqual(x, weighted, places=10)
        for v in vals:
            self.assertAlmostEqual(v, rnn.validate(model, seqs[:1]), places=12)

    def test_tenths_are_cut_into_batches_with_short_last_batches(self):
        model = small_model()
        sizes = []
        original = model.loss
        model.loss = lambda tokens: (sizes.append(tokens.shape[0]), original(tokens))[1]
        rnn.train(model, self.seqs(), self.seqs(), 25, 2, torch.optim.SGD(model.parameters(), lr=0.0),
                  log=lambda s: None)
        training = [s for s in sizes if s != 3]  # validation batches hold all three sequences
        # tenths of 25: 2, 3, 2, 3, ... sequences -> batches [2], [2, 1], [2], [2, 1], ...
        self.assertEqual(training, [2, 2, 1] * 5)

    def test_same_seed_repeats_exactly(self):
        runs = []
        for _ in range(2):
            model = small_model(seed=5, dtype=torch.float32)
            runs.append(rnn.train(model, self.seqs(), self.seqs(), 20, 2, torch.optim.Adam(model.parameters(), 1e-2),
                                  seed=7, log=lambda s: None))
        self.assertEqual(runs[0], runs[1])

    def test_training_lowers_the_loss(self):
        model = small_model(dtype=torch.float32)
        losses, _ = rnn.train(model, self.seqs(), self.seqs(), 200, 3, torch.optim.Adam(model.parameters(), 3e-2),
                              log=lambda s: None)
        self.assertLess(losses[-1], 0.5 * losses[0])

    def test_non_finite_loss_stops_naming_the_step(self):
        model = small_model(dtype=torch.float32)
        with torch.no_grad():
            model.lm_head.weight[4, 0] = float("nan")
        with self.assertRaisesRegex(FloatingPointError, r"nan at step 1 \(sequences 1-2\)"):
            rnn.train(model, self.seqs(), self.seqs(), 20, 2, torch.optim.SGD(model.parameters(), lr=0.0),
                      log=lambda s: None)

    def test_too_few_sequences_for_ten_points(self):
        model = small_model()
        with self.assertRaisesRegex(rnn.InputError, "--num_sequences"):
            rnn.train(model, self.seqs(), self.seqs(), 9, 2, torch.optim.SGD(model.parameters(), lr=0.0))


# ============================================================================= command line

class CommandLineCase(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def outs(self):
        return ["--train_losses_out", self.tmp / "tl.txt", "--val_losses_out", self.tmp / "vl.txt",
                "--metrics_out", self.tmp / "m.txt", "--checkpoint", self.tmp / "model.pt"]

    def tiny(self, *extra, train=TINY_TRAIN, val=TINY_VALID):
        return ["--train_data", train, "--val_data", val, *TINY_ARGS, *self.outs(), *extra]

    def run_main(self, *argv):
        """rnn.main in-process: (exit message or None, stdout)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                rnn.main([str(a) for a in argv])
            except SystemExit as e:
                return (str(e.code) if e.code not in (0, None) else None), out.getvalue()
        return None, out.getvalue()


class TestCommandLine(CommandLineCase):
    def test_tiny_command_reproduces_tiny_metrics(self):
        r = run_script("rnn.py", *self.tiny())
        self.assertEqual(r.returncode, 0, r.stderr)
        ref = dict(line.split(": ") for line in (REPO / "tiny_metrics.txt").read_text().splitlines())
        got = dict(line.split(": ") for line in (self.tmp / "m.txt").read_text().splitlines())
        self.assertEqual(sorted(got), ["train_loss", "val_loss"])
        for key in ref:
            self.assertAlmostEqual(float(got[key]), float(ref[key]), places=4)
        for name, ref_name in (("tl.txt", "tiny_train_losses.txt"), ("vl.txt", "tiny_val_losses.txt")):
            for a, b in zip((self.tmp / name).read_text().split(), (REPO / ref_name).read_text().split()):
                self.assertAlmostEqual(float(a), float(b), places=4)

    def test_writes_ten_losses_and_two_metric_lines(self):
        self.assertIsNone(self.run_main(*self.tiny())[0])
        for name in ("tl.txt", "vl.txt"):
            lines = (self.tmp / name).read_text().splitlines()
            self.assertEqual(len(lines), 10)
            self.assertTrue(all(math.isfinite(float(x)) for x in lines))
        metrics = (self.tmp / "m.txt").read_text().splitlines()
        self.assertEqual(len(metrics), 2)
        self.assertRegex(metrics[0], r"^train_loss: \d+\.\d{6}$")
        self.assertRegex(metrics[1], r"^val_loss: \d+\.\d{6}$")
        self.assertEqual(float(metrics[0].split()[1]), float((self.tmp / "tl.txt").read_text().split()[-1]))
        self.assertEqual(float(metrics[1].split()[1]), float((self.tmp / "vl.txt").read_text().split()[-1]))

    def test_logs_one_line_per_validation_point(self):
        err, out = self.run_main(*self.tiny())
        self.assertIsNone(err)
        lines = [l for l in out.splitlines() if l.startswith("sequences ")]
        self.assertEqual([l.split()[1] for l in lines],
                         [f"{128 * k // 10}/128" for k in range(1, 11)])
        vals = (self.tmp / "vl.txt").read_text().split()
        for line, val in zip(lines, vals):
            self.assertRegex(line, r"train loss \d+\.\d{4}  val loss \d+\.\d{4}  \d+\.\d s$")
            self.assertAlmostEqual(float(line.split("val loss ")[1].split()[0]), float(val), places=4)

    def test_relu_activation_from_the_command_line(self):
        self.assertIsNone(self.run_main(*self.tiny("--activation", "relu", "--num_sequences", "20"))[0])
        model, ckpt = rnn.load_checkpoint(self.tmp / "model.pt")
        self.assertEqual(ckpt["config"]["activation"], "relu")
        x = torch.randn(1, 3, 64)
        with torch.no_grad():
            self.assertGreaterEqual(float(model.rnn(x)[0].min()), 0.0)  # ReLU states are never negative

    def test_checkpoint_is_a_plain_dict_and_round_trips(self):
        self.assertIsNone(self.run_main(*self.tiny())[0])
        ckpt = torch.load(self.tmp / "model.pt")  # weights_only=True: no pickled modules
        self.assertEqual(set(ckpt), {"config", "state_dict", "tokenizer", "args"})
        self.assertEqual(ckpt["config"]["vocab_size"], 1024)
        self.assertEqual(ckpt["args"]["num_sequences"], 128)
        model, _ = rnn.load_checkpoint(self.tmp / "model.pt")
        # The reloaded model is the trained one: it scores the validation set exactly as the
        # run's last point did (and a fresh model would not).
        val_loss = float((self.tmp / "m.txt").read_text().splitlines()[1].split()[1])
        val = rnn.load_sequences(TINY_VALID, 1024, "--val_data")
        self.assertAlmostEqual(rnn.validate(model, val), val_loss, places=5)
        torch.manual_seed(0)
        fresh = rnn.RNNLanguageModel(**ckpt["config"])
        self.assertGreater(abs(rnn.validate(fresh, val) - val_loss), 0.05)

    def test_sampling_command_prints_each_temperature(self):
        self.assertIsNone(self.run_main(*self.tiny())[0])
        err, out = self.run_main("--checkpoint", self.tmp / "model.pt", "--prompt", "Once upon a time",
                                 "--temperature", "0", "0.8", "--num_tokens", "5", "--num_samples", "2")
        self.assertIsNone(err)
        self.assertEqual(out.count("--- temperature 0, sample"), 2)
        self.assertEqual(out.count("--- temperature 0.8, sample"), 2)
        self.assertEqual(out.count("\nOnce upon a time"), 4)


class TestGeneration(unittest.TestCase):
    def test_greedy_generation_is_deterministic(self):
        model = small_model(vocab=30, embed=4, hidden=6, dk=3, dv=3)
        prefix = torch.tensor([[3, 4, 5], [7, 8, 9]])
        a = model.generate(prefix, 12, 0.0)
        torch.manual_seed(123)  # greedy ignores the random state
        self.assertTrue(torch.equal(a, model.generate(prefix, 12, 0.0)))

    def test_greedy_generation_picks_the_argmax_of_the_full_forward(self):
        model = small_model(vocab=30, embed=4, hidden=6, dk=3, dv=3)
        seq = [3, 4, 5]
        new = model.generate(torch.tensor([seq]), 8, 0.0)[0].tolist()
        for token in new:
            if token == 1:
                break
            self.assertEqual(token, int(model(torch.tensor([seq]))[0][0, -1].argmax()))
            seq.append(token)

    def test_cache_gives_the_same_tokens_as_recomputing(self):
        model = small_model(vocab=30, embed=4, hidden=6, dk=3, dv=3, seed=4)
        prefix = torch.tensor([[3, 4, 5], [7, 8, 9]])
        torch.manual_seed(0)
        a = model.generate(prefix, 20, 0.7, use_cache=True)
        torch.manual_seed(0)
        b = model.generate(prefix, 20, 0.7, use_cache=False)
        self.assertTrue(torch.equal(a, b))

    def test_stops_when_every_row_has_ended_and_pads_after_the_end(self):
        model = small_model(vocab=12)
        prefix = torch.tensor([[3, 4], [3, 4]])

        def favour(row_tokens):  # an LM head whose argmax is a fixed token per row
            def head(a):
                logits = torch.zeros(a.shape[0], 12, dtype=a.dtype)
                for row, token in enumerate(row_tokens):
                    logits[row, token] = 50.0
                return logits
            return head
        model.lm_head.forward = favour([1, 1])
        self.assertEqual(model.generate(prefix, 10, 0.0).tolist(), [[1], [1]])
        model.lm_head.forward = favour([1, 7])
        self.assertEqual(model.generate(prefix, 4, 0.0).tolist(), [[1, 0, 0, 0], [7, 7, 7, 7]])

    def test_select_token_greedy_is_argmax(self):
        logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0]])
        self.assertEqual(rnn.RNNLanguageModel.select_token(logits, 0.0).tolist(), [1, 0])

    def test_temperature_sampling_matches_softmax_frequencies(self):
        logits = [1.0, 0.0, -1.0, 0.5]
        tau, n = 0.7, 40000
        e = [math.exp(v / tau) for v in logits]
        expected = [x / sum(e) for x in e]
        torch.manual_seed(0)
        draws = rnn.RNNLanguageModel.select_token(torch.tensor([logits] * n), tau)
        counts = torch.bincount(draws, minlength=4).tolist()
        for c, p in zip(counts, expected):
            sigma = math.sqrt(n * p * (1 - p))
            self.assertLess(abs(c - n * p), 4.5 * sigma)
        # and it is not the untempered softmax: the top token is clearly more frequent
        e1 = [math.exp(v) for v in logits]
        self.assertGreater(counts[0] / n, e1[0] / sum(e1) + 0.05)

    def test_negative_temperature_is_an_error(self):
        with self.assertRaises(ValueError):
            rnn.RNNLanguageModel.select_token(torch.zeros(1, 3), -0.1)

    def test_complete_does_not_feed_eos_and_continues_the_text(self):
        model = small_model(vocab=1024, dtype=torch.float32)
        seen = []
        original = model.generate
        model.generate = lambda tokens, *a, **k: (seen.append(tokens[0].tolist()), original(tokens, *a, **k))[1]
        prefix = "Once upon a time there was a"
        text = model.complete(prefix, tokenizer(), num_tokens=6, temperature=0.0)
        ids = tokenizer().encode(prefix, add_special_tokens=False)
        self.assertEqual(seen, [ids])
        self.assertNotEqual(seen[0][-1], 1)
        new = original(torch.tensor([ids]), 6, 0.0)[0].tolist()
        new = new[:new.index(1)] if 1 in new else new
        self.assertEqual(prefix + text, tokenizer().decode(ids + new))

    def test_complete_rejects_an_empty_prompt(self):
        with self.assertRaises(ValueError):
            small_model(vocab=1024).complete("  ", tokenizer())


# ============================================================================= bad input

class TestBadInput(CommandLineCase):
    def write(self, name, obj):
        path = self.tmp / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
        return path

    def assertFails(self, argv, *needles):
        err, _ = self.run_main(*argv)
        self.assertIsNotNone(err, "expected an error exit")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        for needle in needles:
            self.assertIn(str(needle), err)
        for name in ("tl.txt", "vl.txt", "m.txt", "model.pt"):
            self.assertFalse((self.tmp / name).exists(), f"{name} was left behind")
        self.assertEqual([p.name for p in self.tmp.iterdir() if p.name.startswith(".")], [])

    def test_missing_data_file(self):
        missing = self.tmp / "missing.json"
        self.assertFails(self.tiny(train=missing), "--train_data", missing, "no such file")

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

    def test_sequence_shorter_than_two_tokens(self):
        bad = self.write("short.json", [[3, 4, 1], [1]])
        self.assertFails(self.tiny(val=bad), "--val_data", bad, "sequence 1", "at least 2")

    def test_non_positive_sizes_counts_and_batch(self):
        for flag, value in (("--embed_dim", "0"), ("--hidden_dim", "-3"), ("--dk", "0"), ("--dv", "x"),
                            ("--num_sequences", "0"), ("--batch_size", "-1"), ("--lr", "0"), ("--num_tokens", "0")):
            r = run_script("rnn.py", *self.tiny(flag, value))
            self.assertEqual(r.returncode, 2, flag)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(flag, r.stderr)
        self.assertFails(self.tiny("--num_sequences", "5"), "--num_sequences", "at least 10")

    def test_id_too_large_for_int64(self):
        bad = self.write("huge.json", "[[3, 4, 1], [5, 99999999999999999999, 1]]")
        self.assertFails(self.tiny(train=bad), "--train_data", bad, "99999999999999999999")

    def test_unknown_or_missing_device(self):
        self.assertFails(self.tiny("--device", "xla"), "--device xla")
        if not torch.cuda.is_available():
            self.assertFails(self.tiny("--device", "cuda"), "--device cuda", "not available")

    def test_negative_temperature(self):
        r = run_script("rnn.py", "--checkpoint", "model.pt", "--prompt", "Hi", "--temperature", "-0.5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--temperature", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_empty_prompt(self):
        self.assertFails(["--checkpoint", self.tmp / "x.pt", "--prompt", " "], "--prompt", "empty")

    def test_output_path_that_cannot_be_written(self):
        nowhere = self.tmp / "no_such_dir" / "m.txt"
        self.assertFails([*self.tiny(), "--metrics_out", nowhere], "--metrics_out", "does not exist")
        self.assertFails([*self.tiny(), "--checkpoint", self.tmp], "--checkpoint", "directory")

    def test_missing_corrupt_or_mismatched_checkpoint(self):
        sample = ["--prompt", "Once upon a time"]
        missing = self.tmp / "none.pt"
        self.assertFails(["--checkpoint", missing, *sample], "--checkpoint", missing, "no such file")
        corrupt = self.tmp / "corrupt.pt"
        corrupt.write_bytes(b"not a checkpoint at all")
        self.assertFails(["--checkpoint", corrupt, *sample], "--checkpoint", corrupt, "not a checkpoint")
        other = self.tmp / "other.pt"
        model = rnn.RNNLanguageModel(512, 4, 4, 2, 2)
        torch.save({"config": model.config, "state_dict": model.state_dict(), "tokenizer": "my_tokenizer", "args": {}}, other)
        self.assertFails(["--checkpoint", other, *sample], "--checkpoint", other, "512", "1024")

    def test_error_is_one_line_without_traceback_from_the_shell(self):
        missing = self.tmp / "missing.json"
        r = run_script("rnn.py", *self.tiny(train=missing))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().splitlines(), [f"rnn.py: error: --train_data {missing}: no such file"])


# ============================================================================= experiments

class TestExperiments(unittest.TestCase):
    """experiments.py all at a tiny scale on the tiny fixtures (seconds, not hours)."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_all(self, *extra):
        return run_script("experiments.py", "all", "--scale", "0.0004", "--out", self.tmp / "res",
                          "--train_data", TINY_TRAIN, "--val_data", TINY_VALID, "--num_tokens", "8", *extra)

    def test_all_produces_every_file_and_a_second_run_redoes_nothing(self):
        r = self.run_all()
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        res = self.tmp / "res"
        for name in ("sizes_train.png", "sizes_val.png", "batch_train.png", "batch_val.png",
                     "sequences_train.png", "sequences_val.png"):
            self.assertEqual((res / name).read_bytes()[:8], b"\x89PNG\r\n\x1a\n", name)
        # 4 sizes + 4 batches + 4 counts + 1 large run, less the shared (128, 128, 50k) run
        # counted three times: 10 distinct runs, each with ten points.
        runs = sorted((res / "runs").iterdir())
        self.assertEqual(len(runs), 10)
        for run in runs:
            for name in ("train_losses.txt", "val_losses.txt"):
                self.assertEqual(len((run / name).read_text().splitlines()), 10, run / name)
        # 20k sequences at scale 0.0004 is 8, raised to the minimum of 10.
        self.assertIn("e128_h128_k128_v128_b128_n10_s0", [p.name for p in runs])
        self.assertIn("e512_h512_k256_v256_b128_n100_s0", [p.name for p in runs])
        rows = list(csv.reader(io.StringIO((res / "batch_times.csv").read_text())))
        self.assertEqual([row[0] for row in rows], ["Batch Size", "32", "64", "128", "256"])
        self.assertEqual([row[2] for row in rows[1:]], ["482", "240", "125", "100"])  # the handout's T4 times
        self.assertEqual(len((res / "batch_times.md").read_text().splitlines()), 2 + 4)
        samples = (res / "samples.md").read_text(encoding="utf-8")
        for t in ("0", "0.3", "0.8"):
            self.assertIn(f"## Temperature = {t}\n", samples)
        self.assertEqual(samples.count("Once upon a time there was a"), 3 * 3 + 1)
        self.assertIn("2.279308", samples)
        stamps = {p: p.stat().st_mtime_ns for p in res.rglob("*") if p.is_file() and p.parent.parent.name == "runs"}
        again = self.run_all()
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertEqual(again.stdout.count("finished earlier, not repeated"), 10)
        self.assertNotIn("training on", again.stdout)
        self.assertEqual({p: p.stat().st_mtime_ns for p in stamps}, stamps)

    def test_missing_matplotlib_is_a_clear_error(self):
        blocker = self.tmp / "block"
        blocker.mkdir()
        (blocker / "matplotlib.py").write_text("raise ImportError('blocked for the test')\n")
        r = run_script("experiments.py", "sizes", "--out", self.tmp / "res", env={"PYTHONPATH": str(blocker)})
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stderr.strip().splitlines(),
                         ["experiments.py: error: the plots need matplotlib: pip install -r requirements-plots.txt"])
        self.assertFalse((self.tmp / "res").exists())


# ============================================================================= runner

def main():
    p = argparse.ArgumentParser(description="Run the kit's tests.")
    p.add_argument("-k", dest="patterns", action="append", default=[], type=str,
                   help="only tests whose name contains PATTERN (case-insensitive; repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    args = p.parse_args()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])

    def flatten(s):
        for t in s:
            yield from (flatten(t) if isinstance(t, unittest.TestSuite) else [t])
    tests = [t for t in flatten(suite)
             if not args.patterns or any(p.lower() in t.id().lower() for p in args.patterns)]
    result = unittest.TextTestRunner(verbosity=2 if args.verbose else 1).run(unittest.TestSuite(tests))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{passed} passed, {failed} failed" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
