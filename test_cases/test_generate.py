"""generate: forward over the prefix, then exactly max_tokens tokens through rnn.step and attention.step.

The sampled tokens are checked by replay, since torch.multinomial draws differ between torch
versions: along the tokens returned, the logits of the stored model (the handout's equations,
computed here) are drawn from again with the starter's torch.multinomial(softmax(g / τ), 1)
under the same seed; a correct generate returns exactly those draws."""

import torch

from test_cases.helpers import ComponentTest, check_tokens, reference_logits, starter_draws, student_lm


def model(c, rnn):
    lm = student_lm(rnn, c["sizes"], c["state"])
    lm.eval()
    return lm


class GenerateTest(ComponentTest):
    INPUTS = ("sizes", "state", "prefix", "temperature")

    def check(self, what, tokens, expected):
        self.assertTrue(torch.is_tensor(tokens) and tokens.dim() == 1,
                        f"{what} should return a 1-D tensor of the new tokens, got "
                        f"{tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__}")
        check_tokens(what, tokens, expected)

    @staticmethod
    def compute_greedy(c, rnn):
        return model(c, rnn).generate(c["prefix"], max_tokens=15, temperature=0.0)

    def test_greedy(self):
        """generate(prefix, max_tokens=15, temperature=0)"""
        self.check("generate(prefix, 15, temperature 0)", self.computed(), self.c["greedy"])

    @staticmethod
    def compute_default_length(c, rnn):
        return model(c, rnn).generate(c["prefix"])

    def test_default_length(self):
        """generate(prefix): 10 tokens, greedy"""
        self.check("generate(prefix) with its defaults", self.computed(), self.c["default"])

    @staticmethod
    def compute_sampled(c, rnn):
        lm = model(c, rnn)
        torch.manual_seed(42)
        return lm.generate(c["prefix"], max_tokens=15, temperature=c["temperature"])

    def test_sampled(self):
        """generate(prefix, 15, temperature 0.5) under torch.manual_seed(42)"""
        prefix, temperature = self.c["prefix"], self.c["temperature"]
        tokens = self.computed()
        what = f"generate(prefix, 15, temperature {temperature}) after torch.manual_seed(42)"
        self.assertTrue(torch.is_tensor(tokens) and tokens.numel() == 15, f"{what} should return 15 tokens")
        # The logits before each new token, along the path taken: position t - 1 predicts token t.
        path = prefix[0].tolist() + [int(x) for x in tokens.reshape(-1)]
        rows = reference_logits(self.c["state"], path)[prefix.shape[1] - 1:-1]
        self.check(f"{what}, against torch.multinomial(softmax(g / {temperature}), 1) of each step's logits",
                   tokens, starter_draws(rows, temperature, seed=42))
