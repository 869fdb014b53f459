"""generate: forward over the prefix, then exactly max_tokens tokens through rnn.step and attention.step.

The student's model runs with the grader's stand-in rnn and attention (test_cases/stand_ins.py),
whose state carries the whole prefix: these checks measure generate alone, and a generate that
drops, reorders or restarts its context, or stops at </s>, returns other tokens. The sampled
tokens are checked by replay, since torch.multinomial draws differ between torch versions:
along the tokens returned, the stand-in model's logits are drawn from again with the starter's
torch.multinomial(softmax(g / τ), 1) under the same seed; a correct generate returns exactly
those draws."""

import torch

from test_cases.helpers import ComponentTest, check_tokens, stand_in_generator, starter_draws
from test_cases.stand_ins import StandInGenerator


class GenerateTest(ComponentTest):
    INPUTS = ("sizes", "stand_in", "prefix", "temperature")

    def check(self, what, tokens, expected):
        self.assertTrue(torch.is_tensor(tokens) and tokens.dim() == 1,
                        f"{what} should return a 1-D tensor of the new tokens, got "
                        f"{tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__}")
        check_tokens(what, tokens, expected)

    @staticmethod
    def compute_greedy(c, rnn):
        return stand_in_generator(rnn, c).generate(c["prefix"], max_tokens=15, temperature=0.0)

    def test_greedy(self):
        """generate(prefix, max_tokens=15, temperature=0)"""
        self.check("generate(prefix, 15, temperature 0)", self.computed(), self.c["greedy"])

    @staticmethod
    def compute_default_length(c, rnn):
        return stand_in_generator(rnn, c).generate(c["prefix"])

    def test_default_length(self):
        """generate(prefix): 10 tokens, greedy"""
        self.check("generate(prefix) with its defaults", self.computed(), self.c["default"])

    @staticmethod
    def compute_sampled(c, rnn):
        lm = stand_in_generator(rnn, c)
        torch.manual_seed(42)
        return lm.generate(c["prefix"], max_tokens=15, temperature=c["temperature"])

    def test_sampled(self):
        """generate(prefix, 15, temperature 0.5) under torch.manual_seed(42)"""
        prefix, temperature = self.c["prefix"], self.c["temperature"]
        tokens = self.computed()
        what = f"generate(prefix, 15, temperature {temperature}) after torch.manual_seed(42)"
        self.assertTrue(torch.is_tensor(tokens) and tokens.numel() == 15, f"{what} should return 15 tokens")
        rows = StandInGenerator(self.c["stand_in"]).logits_before(prefix, tokens.reshape(-1))
        self.check(f"{what}, against torch.multinomial(softmax(g / {temperature}), 1) of each step's logits",
                   tokens, starter_draws(rows, temperature, seed=42))
