"""rnn.py against tests/literal/rnn.py, the starter completed step by step as a student
would (sharing no code with rnn.py): the same initial weights under seed 10601, the same
logits, hidden states and attention inputs, gradients, loss points and sampled tokens, and
the literal completion reproduces the committed data/tiny_metrics.txt (and so passes the
grader's comparison of its three files, kit/tiny.py's)."""

import unittest

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

import rnn
from kit import tiny
from tests.helpers import LITERAL, TINY_TRAIN, TINY_VALID, TempDirCase, literal, run_script, tokenizer

SIZES = [(8, 12, 30, 5, 7), (16, 16, 1024, None, None), (64, 128, 1024, 32, 32)]


def both(embed, hidden, vocab, dk, dv):
    """The kit's model and the literal one, each built right after torch.manual_seed(10601)."""
    args = (embed, hidden, vocab) + ((dk, dv) if dk is not None else ())
    torch.manual_seed(10601)
    kit = rnn.RNNLanguageModel(*args)
    torch.manual_seed(10601)
    lit = literal().RNNLanguageModel(*args)
    return kit, lit


class SameModelTest(unittest.TestCase):
    def test_same_initial_weights_under_the_starters_seed(self):
        for sizes in SIZES:
            kit, lit = both(*sizes)
            ours, theirs = kit.state_dict(), lit.state_dict()
            self.assertEqual(list(ours), list(theirs), sizes)
            for name in ours:
                self.assertTrue(torch.equal(ours[name], theirs[name]), f"{sizes}: {name}")

    def test_same_outputs_and_gradients(self):
        for sizes in SIZES[:2]:
            kit, lit = both(*sizes)
            kit, lit = kit.double(), lit.double()
            tokens = torch.randint(0, sizes[2], (3, 9), generator=torch.Generator().manual_seed(1))
            for a, b, what in zip(kit(tokens), lit(tokens), ("logits", "hidden states", "attention inputs")):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"{sizes}: {what}")
            loss_fn = nn.CrossEntropyLoss()
            ours = torch.autograd.grad(rnn.next_token_loss(kit, tokens, loss_fn), list(kit.parameters()))
            logits = lit(tokens)[0][:, :-1]
            theirs = torch.autograd.grad(loss_fn(logits.reshape(-1, sizes[2]), tokens[:, 1:].reshape(-1)),
                                         list(lit.parameters()))
            for (name, _), a, b in zip(kit.named_parameters(), ours, theirs):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"{sizes}: gradient of {name}")


class SameTrainingTest(unittest.TestCase):
    def run_both(self, num_sequences, batch_size):
        results = []
        for module, model in zip((rnn, literal()), both(16, 24, 1024, 8, 12)):
            train_data = DataLoader(module.SentenceDataset(TINY_TRAIN), batch_size=batch_size, shuffle=False)
            valid_data = DataLoader(module.SentenceDataset(TINY_VALID), batch_size=batch_size, shuffle=False)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            results.append(module.train(model, train_data, valid_data, nn.CrossEntropyLoss(), optimizer,
                                        num_sequences, batch_size))
        return results

    def test_same_points_for_several_schedules(self):
        # val_index = max(1, int(n / 10) // b): 1, 3, 1 and 2
        for num_sequences, batch_size, points in ((32, 4, 8), (64, 2, 11), (100, 8, 12), (200, 10, 10)):
            ours, theirs = self.run_both(num_sequences, batch_size)
            self.assertEqual(len(ours[0]), points, (num_sequences, batch_size))
            for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
                self.assertAlmostEqual(a, b, delta=1e-4, msg=(num_sequences, batch_size))  # 4 decimals


class SameSamplesTest(unittest.TestCase):
    def test_same_tokens_greedy_and_sampled_under_a_seed(self):
        kit, lit = both(32, 48, 1024, 16, 16)
        with torch.no_grad():  # a peakier head than at initialisation, as after some training
            for lm in (kit, lit):
                lm.lm_head.weight.mul_(20)
        prefix = torch.tensor([tokenizer().encode("Once upon a time there was a", add_special_tokens=False)])
        for temperature in (0.0, 0.3, 0.8, 1.5):
            torch.manual_seed(42)
            ours = kit.generate(prefix, max_tokens=40, temperature=temperature)
            torch.manual_seed(42)
            theirs = lit.generate(prefix, max_tokens=40, temperature=temperature)
            self.assertEqual(ours.tolist(), theirs.tolist(), f"temperature {temperature}")
        torch.manual_seed(7)
        ours = rnn.complete(kit, tokenizer(), "Tom and Sue", 30, 0.8)
        torch.manual_seed(7)
        theirs = literal().complete(lit, tokenizer(), "Tom and Sue", 30, 0.8)
        self.assertEqual(ours, theirs)


class LiteralTinyCommandTest(TempDirCase):
    def test_the_literal_completion_reproduces_tiny_metrics(self):
        r = run_script(LITERAL, *self.tiny())
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertReproducesTinyFiles()
        # The grader's program check compares the same files, under the handout's names, with the reference.
        written = {tiny.OUTPUTS[key]: (self.tmp / ours).read_text(encoding="utf-8")
                   for key, ours in (("train", "tl.txt"), ("val", "vl.txt"), ("metrics", "m.txt"))}
        self.assertIsNone(tiny.compare_files(written, tiny.reference()))
