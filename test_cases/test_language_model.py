"""RNNLanguageModel: initial weights under seed 10601, forward, the step path, select_token.

The starter's callers always pass key_dim and value_dim, so their defaults are not checked
here (the kit's are, in tests/). A draw of torch.multinomial differs between torch versions
for the same seed, so the expected draws are not stored: they are made here, on the torch
installed, by the starter's own line, torch.multinomial(softmax(logits / temperature), 1)."""

import torch

from test_cases.helpers import ComponentTest, check_tensor, check_tokens, starter_draws, student_lm


def check_state(state, expected):
    """Every tensor of ``expected`` in ``state``, with its values (to 1e-6); an AssertionError naming the first not."""
    for name, value in expected.items():
        if name not in state:
            raise AssertionError(f"{name} is missing")
        check_tensor(name, state[name], value, atol=1e-6, rtol=0)


def model(c, rnn):
    return student_lm(rnn, c["sizes"], c["state"])


class LanguageModelTest(ComponentTest):
    # "state": weights apart from initial_state, the seed-10601 weights the first check expects.
    INPUTS = ("sizes", "state", "tokens", "logits_vector", "temperature", "num_draws")

    @staticmethod
    def compute_initial_weights(c, rnn):
        torch.manual_seed(10601)
        return rnn.RNNLanguageModel(*c["sizes"]).state_dict()

    def test_initial_weights(self):
        """torch.manual_seed(10601), then RNNLanguageModel(embed, hidden, vocab, dk, dv): the same weights"""
        state = self.computed()
        try:
            check_state(state, self.c["initial_state"])
        except AssertionError as e:
            self.fail(f"initial weights under seed 10601: {e}; create embeddings, rnn, attention, "
                      f"lm_head in that order, each nn.Linear with its default bias")

    @staticmethod
    def compute_forward(c, rnn):
        with torch.no_grad():
            return model(c, rnn)(c["tokens"])

    def test_forward(self):
        """forward(tokens) -> token_logits, hidden_states, attn_inputs"""
        result = self.computed()
        self.assertEqual(len(result), 3, "forward should return (token_logits, hidden_states, attn_inputs)")
        check_tensor("forward token_logits", result[0], self.c["token_logits"])
        check_tensor("forward hidden_states", result[1], self.c["hidden_states"])
        check_tensor("forward attn_inputs (the RNN's output states)", result[2], self.c["attn_inputs"])

    @staticmethod
    def compute_step_path(c, rnn):
        lm, tokens = model(c, rnn), c["tokens"]
        with torch.no_grad():
            _, hidden_states, attn_inputs = lm(tokens[:, :-1])
            h, y = lm.rnn.step(lm.embeddings(tokens[:, -1]), hidden_states)
            return lm.lm_head(lm.attention.step(torch.cat([attn_inputs, y.unsqueeze(1)], dim=1)))

    def test_step_path(self):
        """forward over a prefix, then rnn.step and attention.step: the next logits"""
        check_tensor("logits after forward(prefix), rnn.step, attention.step", self.computed(),
                     self.c["step_logits"])

    @staticmethod
    def compute_select_token_greedy(c, rnn):
        return model(c, rnn).select_token(c["logits_vector"], 0.0)

    def test_select_token_greedy(self):
        """select_token(logits (V,), 0) is the argmax"""
        check_tokens("select_token at temperature 0", [int(self.computed())], [self.c["greedy"]])

    @staticmethod
    def compute_select_token_sampling(c, rnn):
        lm = model(c, rnn)
        torch.manual_seed(42)
        return [lm.select_token(c["logits_vector"], c["temperature"]) for _ in range(c["num_draws"])]

    def test_select_token_sampling(self):
        """select_token(logits (V,), 0.7) under torch.manual_seed(42): the starter's torch.multinomial draws"""
        logits, temperature, n = self.c["logits_vector"], self.c["temperature"], self.c["num_draws"]
        draws = [int(token) for token in self.computed()]
        check_tokens(f"{n} draws of select_token at temperature {temperature} after "
                     f"torch.manual_seed(42), against torch.multinomial(softmax(logits / {temperature}), 1)",
                     draws, starter_draws([logits] * n, temperature, seed=42))
