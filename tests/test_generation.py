"""select_token, generate and complete: the starter's semantics, and the cache changes nothing."""

import math
import unittest

import torch

import rnn
from tests.helpers import TINY_TRAIN, TINY_VALID, TempDirCase, run_main, small_model, tokenizer


def peaky_model(vocab=30, seed=4):
    lm = small_model(embed=4, hidden=6, vocab=vocab, dk=3, dv=3, seed=seed, dtype=torch.float32)
    with torch.no_grad():
        lm.lm_head.weight.mul_(10)
    return lm.eval()


class SelectTokenTest(unittest.TestCase):
    def test_greedy_is_the_argmax_of_a_vector_or_of_each_row(self):
        lm = peaky_model()
        self.assertEqual(lm.select_token(torch.tensor([0.1, 2.0, -1.0]), 0.0).tolist(), 1)
        self.assertEqual(lm.select_token(torch.tensor([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0]]), 0.0).tolist(), [1, 0])

    def test_a_draw_is_the_starters_multinomial_draw(self):
        lm = peaky_model()
        logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
        torch.manual_seed(3)
        ours = [int(lm.select_token(logits, 0.7)) for _ in range(50)]
        torch.manual_seed(3)
        starter = [int(torch.multinomial(torch.softmax(logits / 0.7, dim=-1), 1)[0]) for _ in range(50)]
        self.assertEqual(ours, starter)

    def test_sampling_frequencies_follow_softmax_over_temperature(self):
        logits = [1.0, 0.0, -1.0, 0.5]
        tau, n = 0.7, 40000
        e = [math.exp(v / tau) for v in logits]
        expected = [x / sum(e) for x in e]
        torch.manual_seed(0)
        draws = peaky_model().select_token(torch.tensor([logits] * n), tau)
        counts = torch.bincount(draws, minlength=4).tolist()
        for c, p in zip(counts, expected):
            self.assertLess(abs(c - n * p), 4.5 * math.sqrt(n * p * (1 - p)))
        e1 = [math.exp(v) for v in logits]  # and not the untempered softmax
        self.assertGreater(counts[0] / n, e1[0] / sum(e1) + 0.05)

    def test_negative_temperature_is_an_error(self):
        with self.assertRaises(ValueError):
            peaky_model().select_token(torch.zeros(3), -0.1)


class GenerationTest(unittest.TestCase):
    def test_exactly_max_tokens_as_a_vector_even_past_eos(self):
        lm = peaky_model()
        with torch.no_grad():
            lm.lm_head.bias[1] = 1000.0  # </s> wins every step
        out = lm.generate(torch.tensor([[3, 4, 5]]), max_tokens=7)
        self.assertEqual(out.tolist(), [1] * 7)
        self.assertEqual(len(lm.generate(torch.tensor([[3, 4, 5]]))), 10)  # the starter's default

    def test_greedy_picks_the_argmax_of_a_full_forward_each_step(self):
        lm = peaky_model(seed=1)  # a model whose greedy path changes token on the way
        seq = [3, 4, 5]
        new = lm.generate(torch.tensor([seq]), 12, 0.0).tolist()
        for token in new:
            with torch.no_grad():
                self.assertEqual(token, int(lm(torch.tensor([seq]))[0][0, -1].argmax()))
            seq.append(token)
        self.assertGreater(len(set(new)), 1)

    def test_the_cache_gives_the_handouts_tokens_and_draws(self):
        lm = peaky_model()
        for prefix in (torch.tensor([[3, 4, 5]]), torch.tensor([[3, 4, 5], [7, 8, 9], [2, 2, 2]])):
            for temperature in (0.0, 0.7):
                torch.manual_seed(0)
                a = lm.generate(prefix, 25, temperature, use_cache=True)
                torch.manual_seed(0)
                b = lm.generate(prefix, 25, temperature, use_cache=False)
                self.assertTrue(torch.equal(a, b), (prefix.shape, temperature))
                self.assertEqual(tuple(a.shape), (25,) if prefix.shape[0] == 1 else (prefix.shape[0], 25))


class CompleteTest(unittest.TestCase):
    def test_encodes_without_eos_and_decodes_the_new_tokens(self):
        lm = small_model(vocab=1024, dtype=torch.float32)
        seen = []
        original = lm.generate
        lm.generate = lambda tokens, **k: (seen.append((tokens[0].tolist(), k)), original(tokens, **k))[1]
        prefix = "Once upon a time there was a"
        text = rnn.complete(lm, tokenizer(), prefix, num_tokens=6, temperature=0.0)
        ids = tokenizer().encode(prefix, add_special_tokens=False)
        self.assertEqual(seen, [(ids, {"max_tokens": 6, "temperature": 0.0})])
        self.assertNotEqual(ids[-1], 1)
        self.assertEqual(text, tokenizer().decode(original(torch.tensor([ids]), 6, 0.0).tolist()))


class SamplingCommandTest(TempDirCase):
    def test_prints_each_temperature_and_stops_at_the_stories_end(self):
        model = self.tmp / "model.pt"
        code, _, err = run_main(rnn.main, "--train_data", TINY_TRAIN, "--val_data", TINY_VALID, "--embed_dim", "16",
                                "--hidden_dim", "16", "--num_sequences", "8", "--batch_size", "4",
                                "--metrics_out", self.tmp / "m", "--train_losses_out", self.tmp / "t",
                                "--val_losses_out", self.tmp / "v", "--checkpoint", model)
        self.assertEqual(code, 0, err)
        lm, _ = rnn.load_checkpoint(model)
        with torch.no_grad():
            lm.lm_head.bias[1] = 1000.0  # a model that ends every story at once
        checkpoint = torch.load(model, weights_only=True)
        checkpoint["state_dict"] = lm.state_dict()
        torch.save(checkpoint, self.tmp / "ends.pt")
        for path, empty in ((model, False), (self.tmp / "ends.pt", True)):
            code, out, err = run_main(rnn.main, "--checkpoint", path, "--prompt", "Once upon a time",
                                      "--temperature", "0", "0.8", "--num_tokens", "5", "--num_samples", "2")
            self.assertEqual(code, 0, err)
            self.assertEqual(out.count("--- temperature 0, sample"), 2)
            self.assertEqual(out.count("--- temperature 0.8, sample"), 2)
            self.assertNotIn("</s>", out)
            if empty:  # not a blank: it says why there is nothing
                self.assertEqual(out.count("\nOnce upon a time (nothing: the model ended the story at once, its first "
                                           "token being the end of a story)\n"), 4, out)
