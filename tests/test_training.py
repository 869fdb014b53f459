"""The loss, validate() and train() against independent computations: the shift, the mean
over batches, the starter's loss bookkeeping and schedule, clipping, and the data loader."""

import math
import tempfile
import unittest
from pathlib import Path

import torch
import torch.nn as nn

import rnn
from kit.data import train_loader
from kit.runs import point_sequences
from tests.helpers import TINY_TRAIN, small_model

V = 11


def log_softmax_at(row, index):
    m = max(row)
    return row[index] - m - math.log(sum(math.exp(v - m) for v in row))


def loop_loss(lm, batch):
    """Mean over a batch's positions 1..T-1 of -log P(next token), by plain loops over math."""
    with torch.no_grad():
        logits = lm(batch)[0].tolist()
    terms = [-log_softmax_at(logits[b][n], row[n + 1])
             for b, row in enumerate(batch.tolist()) for n in range(len(row) - 1)]
    return sum(terms) / len(terms)


def batches(sizes, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (n, length), generator=g) for n in sizes]


class LossTest(unittest.TestCase):
    def test_next_token_loss_is_the_shifted_mean_by_an_independent_loop(self):
        lm = small_model()
        batch = torch.tensor([[3, 4, 5, 1, 0, 2], [6, 7, 8, 9, 10, 1]])
        self.assertAlmostEqual(rnn.next_token_loss(lm, batch, nn.CrossEntropyLoss()).item(), loop_loss(lm, batch),
                               places=12)

    def test_validate_reads_the_first_batch_as_the_starters_does(self):
        lm = small_model()
        data = batches([2, 2, 1])
        per_batch = [loop_loss(lm, b) for b in data]
        self.assertGreater(min(abs(per_batch[0] - x) for x in per_batch[1:] + [sum(per_batch) / 3]), 1e-3)
        self.assertAlmostEqual(rnn.validate(lm, data, nn.CrossEntropyLoss()), per_batch[0], places=12)
        self.assertFalse(lm.training)  # the starter leaves it in eval mode

    def test_validate_num_batches_reads_the_first_n_or_all(self):
        lm = small_model()
        data = batches([2, 2, 1])
        per_batch = [loop_loss(lm, b) for b in data]
        for n, expected in ((1, per_batch[0]), (2, sum(per_batch[:2]) / 2), (3, sum(per_batch) / 3),
                            (0, sum(per_batch) / 3), (5, sum(per_batch) / 3)):
            self.assertAlmostEqual(rnn.validate(lm, data, nn.CrossEntropyLoss(), num_batches=n), expected,
                                   places=12, msg=n)
        with self.assertRaisesRegex(ValueError, "num_batches must be a non-negative integer"):
            rnn.validate(lm, data, nn.CrossEntropyLoss(), num_batches=-1)

    def test_validate_stops_reading_after_its_batches(self):
        lm = small_model()
        read = []

        def loader():
            for b in batches([2, 2, 2]):
                read.append(b)
                yield b
        rnn.validate(lm, loader(), nn.CrossEntropyLoss())
        self.assertEqual(len(read), 1)


class TrainLoopTest(unittest.TestCase):
    def test_points_follow_the_starters_bookkeeping(self):
        # lr 0: the weights never move, so each batch's loss is known in advance.
        lm = small_model()
        data = batches([2] * 30)
        # Two more batches with ids outside the vocabulary: train must stop before them.
        data += [torch.full((2, 5), 99), torch.full((2, 5), 99)]
        losses = [loop_loss(lm, b) for b in data[:30]]
        valid = batches([3], seed=1)
        train_losses, valid_losses = rnn.train(lm, data, valid, nn.CrossEntropyLoss(),
                                               torch.optim.SGD(lm.parameters(), lr=0.0), 60, 2)
        # val_index = max(1, int(60 * 0.1) // 2) = 3; 30 batches; points at batches 0, 3, ..., 27
        expected = [losses[0]] + [sum(losses[i - 2:i + 1]) / 3 for i in range(3, 30, 3)]
        self.assertEqual(len(train_losses), 10)
        for got, want in zip(train_losses, expected):
            self.assertEqual(got, round(want, 6))
        self.assertEqual(valid_losses, [round(loop_loss(lm, valid[0]), 6)] * 10)
        # --val_batches: the mean of the first two validation batches at every point
        _, two = rnn.train(lm, data, batches([3, 3, 3], seed=1), nn.CrossEntropyLoss(),
                           torch.optim.SGD(lm.parameters(), lr=0.0), 60, 2, val_batches=2)
        valid = batches([3, 3, 3], seed=1)
        self.assertEqual(two, [round((loop_loss(lm, valid[0]) + loop_loss(lm, valid[1])) / 2, 6)] * 10)
        self.assertTrue(lm.training)  # back to train mode after each validation

    def test_val_index_one_records_every_batch(self):
        lm = small_model()
        data = batches([4] * 5)
        train_losses, valid_losses = rnn.train(lm, data, data[:1], nn.CrossEntropyLoss(),
                                               torch.optim.SGD(lm.parameters(), lr=0.0), 20, 4)
        self.assertEqual(train_losses, [round(loop_loss(lm, b), 6) for b in data])

    def test_point_sequences(self):
        # batch idx's point follows idx + 1 batches; points at multiples of val_index
        self.assertEqual(point_sequences(128, 1, 11), [1 + 12 * i for i in range(11)])
        self.assertEqual(point_sequences(50000, 128, 10), [128 * (1 + 39 * i) for i in range(10)])

    def test_gradients_are_clipped_to_the_global_norm(self):
        for max_norm in (0.01, 0.0):
            lm = small_model()
            before = torch.cat([p.detach().flatten().clone() for p in lm.parameters()])
            rnn.train(lm, batches([3]), batches([1]), nn.CrossEntropyLoss(), torch.optim.SGD(lm.parameters(), lr=1.0),
                      3, 3, max_grad_norm=max_norm)
            moved = float((torch.cat([p.detach().flatten() for p in lm.parameters()]) - before).norm())
            if max_norm:  # one SGD step of lr 1 moves the weights by the clipped gradient's norm
                # (clip_grad_norm_ divides by the norm + 1e-6, hence the 1e-7 allowance)
                self.assertAlmostEqual(moved, max_norm, delta=1e-7)
            else:
                self.assertGreater(moved, 0.1)

    def test_same_start_repeats_exactly_and_adam_lowers_the_loss(self):
        # Learnable data: each sequence counts up by one (mod V) from a random start.
        starts = torch.randint(0, V, (60, 3, 1), generator=torch.Generator().manual_seed(0))
        data = list((starts + torch.arange(5)) % V)
        runs = []
        for _ in range(2):
            lm = small_model(dtype=torch.float32)
            runs.append(rnn.train(lm, data, data[:2], nn.CrossEntropyLoss(),
                                  torch.optim.Adam(lm.parameters(), 3e-2), 180, 3))
        self.assertEqual(runs[0], runs[1])
        self.assertLess(runs[0][0][-1], 0.5 * runs[0][0][0])

    def test_non_finite_loss_stops_naming_the_batch(self):
        lm = small_model(dtype=torch.float32)
        with torch.no_grad():
            lm.lm_head.bias[4] = float("nan")
        with self.assertRaisesRegex(FloatingPointError, r"nan at batch 0 \(sequences 1-2\)"):
            rnn.train(lm, batches([2] * 5), batches([2]), nn.CrossEntropyLoss(),
                      torch.optim.SGD(lm.parameters(), lr=0.0), 10, 2)

    def test_fewer_sequences_than_a_batch_is_an_error(self):
        lm = small_model()
        with self.assertRaisesRegex(rnn.InputError, "--num_sequences 3 is less than --batch_size 4"):
            rnn.train(lm, batches([4]), batches([4]), nn.CrossEntropyLoss(), torch.optim.SGD(lm.parameters(), 0.0), 3, 4)


class LoaderTest(unittest.TestCase):
    def test_walks_the_file_again_in_the_same_order_in_full_batches(self):
        dataset = rnn.SentenceDataset(TINY_TRAIN)
        n = len(dataset)
        said = []
        loader = train_loader(dataset, n + 50, 8, said.append)
        rows = torch.cat(list(loader))
        self.assertEqual(len(said), 1)
        self.assertIn(f"more than the {n:,} sequences", said[0])
        self.assertEqual(rows.shape[0], n + 50)
        expected = torch.stack([dataset[i % n] for i in range(n + 50)])
        self.assertTrue(torch.equal(rows, expected))

    def test_a_file_rewritten_in_place_is_read_again(self):
        # Parsed files are kept for the next run in the same process (experiments.py), by content.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "d.json"
            path.write_text("[[3, 4, 1], [5, 6, 1]]", encoding="utf-8")
            first = rnn.SentenceDataset(path, vocab_size=V)
            path.write_text("[[7, 8, 1], [9, 2, 1]]", encoding="utf-8")  # same size, same instant
            second = rnn.SentenceDataset(path, vocab_size=V)
            self.assertEqual([s.tolist() for s in first], [[3, 4, 1], [5, 6, 1]])
            self.assertEqual([s.tolist() for s in second], [[7, 8, 1], [9, 2, 1]])
            with self.assertRaisesRegex(rnn.InputError, "id 9, outside the tokenizer's vocabulary of 9"):
                rnn.SentenceDataset(path, vocab_size=9)  # the vocabulary is part of what was checked

    def test_within_the_file_it_is_the_starters_dataloader(self):
        dataset = rnn.SentenceDataset(TINY_TRAIN)
        said = []
        ours = list(train_loader(dataset, 40, 8, said.append))
        theirs = list(torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False))
        self.assertEqual(said, [])
        self.assertTrue(all(torch.equal(a, b) for a, b in zip(ours, theirs)))
