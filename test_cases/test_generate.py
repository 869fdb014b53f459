"""generate: forward over the prefix, then exactly max_tokens tokens through rnn.step and attention.step."""

import unittest

import torch

from test_cases.helpers import case, check_tokens, student_lm


class GenerateTest(unittest.TestCase):
    component = "generate"

    def setUp(self):
        self.c = case("generate")
        self.lm = student_lm(self.c["sizes"], self.c["state"])
        self.lm.eval()

    def check(self, what, tokens, expected):
        self.assertTrue(torch.is_tensor(tokens) and tokens.dim() == 1,
                        f"{what} should return a 1-D tensor of the new tokens, got "
                        f"{tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__}")
        check_tokens(what, tokens, expected)

    def test_greedy(self):
        """generate(prefix, max_tokens=15, temperature=0)"""
        self.check("generate(prefix, 15, temperature 0)",
                   self.lm.generate(self.c["prefix"], max_tokens=15, temperature=0.0), self.c["greedy"])

    def test_default_length(self):
        """generate(prefix): 10 tokens, greedy"""
        self.check("generate(prefix) with its defaults", self.lm.generate(self.c["prefix"]), self.c["default"])

    def test_sampled(self):
        """generate(prefix, 15, temperature 0.8) under torch.manual_seed(42)"""
        torch.manual_seed(42)
        self.check(f"generate(prefix, 15, temperature {self.c['temperature']}) after torch.manual_seed(42)",
                   self.lm.generate(self.c["prefix"], max_tokens=15, temperature=self.c["temperature"]),
                   self.c["sampled"])
