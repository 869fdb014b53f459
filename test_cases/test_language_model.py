"""RNNLanguageModel: initial weights under seed 10601, forward, the step path, select_token.

The starter's callers always pass key_dim and value_dim, so their defaults are not checked
here (the kit's are, in tests/). A draw of torch.multinomial differs between torch versions
for the same seed, so the expected draws are not stored: they are made here, on the torch
installed, by the starter's own line, torch.multinomial(softmax(logits / temperature), 1)."""

import unittest

import torch

from test_cases.helpers import case, check_tensor, check_tokens, starter_draws, student, student_lm


def check_state(state, expected):
    """Every tensor of ``expected`` in ``state``, with its values (to 1e-6); an AssertionError naming the first not."""
    for name, value in expected.items():
        if name not in state:
            raise AssertionError(f"{name} is missing")
        check_tensor(name, state[name], value, atol=1e-6, rtol=0)


class LanguageModelTest(unittest.TestCase):
    component = "RNNLanguageModel"

    def setUp(self):
        self.c = case("language_model")
        self.E, self.H, self.V, self.DK, self.DV = self.c["sizes"]

    def model(self):
        return student_lm(self.c["sizes"], self.c["initial_state"])

    def test_initial_weights(self):
        """torch.manual_seed(10601), then RNNLanguageModel(embed, hidden, vocab, dk, dv): the same weights"""
        torch.manual_seed(10601)
        lm = student().RNNLanguageModel(self.E, self.H, self.V, self.DK, self.DV)
        try:
            check_state(lm.state_dict(), self.c["initial_state"])
        except AssertionError as e:
            self.fail(f"initial weights under seed 10601: {e}; create embeddings, rnn, attention, "
                      f"lm_head in that order, each nn.Linear with its default bias")

    def test_forward(self):
        """forward(tokens) -> token_logits, hidden_states, attn_inputs"""
        with torch.no_grad():
            result = self.model()(self.c["tokens"])
        self.assertEqual(len(result), 3, "forward should return (token_logits, hidden_states, attn_inputs)")
        check_tensor("forward token_logits", result[0], self.c["token_logits"])
        check_tensor("forward hidden_states", result[1], self.c["hidden_states"])
        check_tensor("forward attn_inputs (the RNN's output states)", result[2], self.c["attn_inputs"])

    def test_step_path(self):
        """forward over a prefix, then rnn.step and attention.step: the next logits"""
        lm = self.model()
        tokens = self.c["tokens"]
        with torch.no_grad():
            _, hidden_states, attn_inputs = lm(tokens[:, :-1])
            h, y = lm.rnn.step(lm.embeddings(tokens[:, -1]), hidden_states)
            logits = lm.lm_head(lm.attention.step(torch.cat([attn_inputs, y.unsqueeze(1)], dim=1)))
        check_tensor("logits after forward(prefix), rnn.step, attention.step", logits, self.c["step_logits"])

    def test_select_token_greedy(self):
        """select_token(logits (V,), 0) is the argmax"""
        token = self.model().select_token(self.c["logits_vector"], 0.0)
        check_tokens("select_token at temperature 0", [int(token)], [self.c["greedy"]])

    def test_select_token_sampling(self):
        """select_token(logits (V,), 0.7) under torch.manual_seed(42): the starter's torch.multinomial draws"""
        lm, logits, temperature = self.model(), self.c["logits_vector"], self.c["temperature"]
        torch.manual_seed(42)
        draws = [int(lm.select_token(logits, temperature)) for _ in range(self.c["num_draws"])]
        check_tokens(f"{self.c['num_draws']} draws of select_token at temperature {temperature} after "
                     f"torch.manual_seed(42), against torch.multinomial(softmax(logits / {temperature}), 1)",
                     draws, starter_draws([logits] * self.c["num_draws"], temperature, seed=42))
