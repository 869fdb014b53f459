"""The model's classes: hand-computed values (biases included), forward against repeated
step, gradcheck of the hand-written backward, the causal mask, the key/value cache, and
no forbidden modules."""

import ast
import math
import unittest

import torch

import rnn
from tests.helpers import REPO, set_linear, small_model

F64 = torch.float64


def t(rows):
    return torch.tensor(rows, dtype=F64)


def steps(model, x):
    """``RNN.step`` one position at a time over x (B, T, E), the handout's loop: (hidden, output) states (B, T, H)."""
    hs, ys = [], []
    for n in range(x.shape[1]):
        h, y = model.step(x[:, n], torch.stack(hs, 1) if hs else None)
        hs.append(h)
        ys.append(y)
    return torch.stack(hs, 1), torch.stack(ys, 1)


class CellEquationTest(unittest.TestCase):
    def cell(self, activation):
        cell = rnn.RNNCell(2, 2, activation=activation).double()
        set_linear(cell.i2h, [[0.5, -1.0], [0.25, 0.0]], [0.1, -0.2])
        set_linear(cell.h2h, [[1.0, 2.0], [-0.5, 0.5]], [0.05, 0.3])
        return cell

    # W_i2h x + b = (0.5 - 2 + 0.1, 0.25 - 0.2) = (-1.4, 0.05)
    # W_h2h h + b = (0.1 - 0.4 + 0.05, -0.05 - 0.1 + 0.3) = (-0.25, 0.15); sum (-1.65, 0.2)
    def test_relu_by_hand(self):
        out = self.cell("relu")(t([[1.0, 2.0]]), t([[0.1, -0.2]]))[0].tolist()
        self.assertEqual(out[0], 0.0)
        self.assertAlmostEqual(out[1], 0.2, places=14)

    def test_tanh_by_hand(self):
        out = self.cell("tanh")(t([[1.0, 2.0]]), t([[0.1, -0.2]]))[0].tolist()
        self.assertAlmostEqual(out[0], math.tanh(-1.65), places=14)
        self.assertAlmostEqual(out[1], math.tanh(0.2), places=14)

    def test_relu_is_the_default_and_each_linear_has_a_bias(self):
        cell = rnn.RNNCell(3, 4)
        self.assertEqual(cell.activation, "relu")
        self.assertEqual(tuple(cell.i2h.bias.shape), (4,))
        self.assertEqual(tuple(cell.h2h.bias.shape), (4,))


class RecurrenceTest(unittest.TestCase):
    def scalar_rnn(self, activation, w_hh):
        model = rnn.RNN(1, 1, activation=activation).double()
        set_linear(model.cell.i2h, [[0.5]], [0.1])
        set_linear(model.cell.h2h, [[w_hh]], [0.2])
        set_linear(model.out, [[3.0]], [-1.0])
        return model

    def check_by_hand(self, activation, w_hh, phi):
        x = [1.0, 2.0, -1.0]
        h, hs = 0.0, []
        for xt in x:  # h_t = phi(0.5 x_t + 0.1 + w_hh h_{t-1} + 0.2), from h_0 = 0
            h = phi(0.5 * xt + 0.1 + w_hh * h + 0.2)
            hs.append(h)
        hidden, output = self.scalar_rnn(activation, w_hh)(t([[[v] for v in x]]))
        for got, want in zip(hidden.flatten().tolist(), hs):
            self.assertAlmostEqual(got, want, places=14)
        for got, want in zip(output.flatten().tolist(), [3 * v - 1 for v in hs]):
            self.assertAlmostEqual(got, want, places=14)
        return hs

    def test_forward_by_hand_tanh(self):
        self.check_by_hand("tanh", -2.0, math.tanh)

    def test_forward_by_hand_relu(self):
        hs = self.check_by_hand("relu", -0.5, lambda v: max(v, 0.0))
        self.assertEqual(hs[2], 0.0)  # (0.8, 0.9, 0): the case cuts one state and keeps two

    def test_step_starts_from_zero_state_in_every_form(self):
        model = rnn.RNN(3, 4).double()
        x = torch.randn(2, 3, dtype=F64)
        expected = torch.relu(model.cell.i2h(x) + model.cell.h2h.bias)
        for hidden_prev in (None, torch.zeros(2, 0, 4, dtype=F64), torch.zeros(2, 4, dtype=F64)):
            h, y = model.step(x, hidden_prev)
            torch.testing.assert_close(h, expected, rtol=0, atol=1e-15)
            torch.testing.assert_close(y, model.out(expected), rtol=0, atol=1e-15)

    def test_step_takes_the_last_of_the_preceding_states(self):
        model = rnn.RNN(3, 4).double()
        x, states = torch.randn(2, 3, dtype=F64), torch.randn(2, 5, 4, dtype=F64)
        torch.testing.assert_close(model.step(x, states)[0], model.step(x, states[:, -1])[0], rtol=0, atol=0)

    def check_forward_matches_steps(self, activation):
        torch.manual_seed(1)
        model = rnn.RNN(3, 5, activation=activation).double()
        x = torch.randn(2, 7, 3, dtype=F64)
        hiddens, outputs = model(x)
        hs, ys = steps(model, x)
        torch.testing.assert_close(hiddens, hs, rtol=0, atol=1e-12)
        torch.testing.assert_close(outputs, ys, rtol=0, atol=1e-12)

    def test_forward_matches_repeated_step_relu(self):
        self.check_forward_matches_steps("relu")

    def test_forward_matches_repeated_step_tanh(self):
        self.check_forward_matches_steps("tanh")


class AttentionEquationTest(unittest.TestCase):
    def test_step_by_hand(self):
        att = rnn.SelfAttention(2, 2, 2).double()
        set_linear(att.query_transform, [[1.0, 0.0], [0.0, 1.0]])
        set_linear(att.key_transform, [[1.0, 0.0], [0.0, 1.0]], [0.5, 0.0])
        set_linear(att.value_transform, [[1.0, 0.0], [0.0, 1.0]], [1.0, -1.0])
        set_linear(att.output_transform, [[2.0, 0.0], [0.0, -1.0]], [0.5, 0.0])
        y = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
        # q_3 = (1, 1); k_n = y_n + (0.5, 0), so s_n = (y_n . q_3 + 0.5) / sqrt(2) = (1.5, 2.5, 2.5) / sqrt(2)
        e = [math.exp(s / math.sqrt(2)) for s in (1.5, 2.5, 2.5)]
        w = [x / sum(e) for x in e]
        v = [(yn[0] + 1.0, yn[1] - 1.0) for yn in y]
        mix = [sum(wn * vn[i] for wn, vn in zip(w, v)) for i in range(2)]
        got = att.step(t([y]))[0].tolist()
        self.assertAlmostEqual(got[0], 2 * mix[0] + 0.5, places=14)
        self.assertAlmostEqual(got[1], -mix[1], places=14)

    def test_first_position_attends_only_to_itself(self):
        att = rnn.SelfAttention(4, 3, 2).double()
        y = torch.randn(2, 5, 4, dtype=F64)
        expected = att.output_transform(att.value_transform(y[:, 0]))
        torch.testing.assert_close(att(y)[:, 0], expected, rtol=0, atol=1e-14)

    def test_forward_matches_repeated_step(self):
        torch.manual_seed(2)
        att = rnn.SelfAttention(4, 3, 5).double()
        y = torch.randn(3, 6, 4, dtype=F64)
        steps = torch.stack([att.step(y[:, :n + 1]) for n in range(6)], 1)
        torch.testing.assert_close(att(y), steps, rtol=0, atol=1e-12)

    def test_cached_step_matches_uncached_step(self):
        att = rnn.SelfAttention(4, 3, 5).double()
        y = torch.randn(2, 6, 4, dtype=F64)
        cache = att.new_cache(y[:, :2], capacity=3)  # grows past its capacity on the way
        for n in range(2, 6):
            torch.testing.assert_close(att.step(y[:, n:n + 1], cache), att.step(y[:, :n + 1]), rtol=0, atol=1e-13)


class ModelForwardTest(unittest.TestCase):
    def test_forward_shapes_and_composition(self):
        lm = small_model()
        tokens = torch.tensor([[3, 4, 5, 1], [6, 7, 0, 2]])
        logits, hiddens, attn_inputs = lm(tokens)
        self.assertEqual(tuple(logits.shape), (2, 4, 11))
        self.assertEqual(tuple(hiddens.shape), (2, 4, 4))
        self.assertEqual(tuple(attn_inputs.shape), (2, 4, 4))
        expected = lm.lm_head(lm.attention(lm.rnn(lm.embeddings(tokens))[1]))
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-14)
        torch.testing.assert_close(lm.shifted_logits(tokens), logits[:, :-1], rtol=0, atol=1e-14)

    def test_logits_by_hand_scalar_model(self):
        lm = rnn.RNNLanguageModel(1, 1, 3, 1, 1, activation="tanh").double()
        with torch.no_grad():
            lm.embeddings.weight.copy_(t([[0.5], [1.0], [-1.0]]))
        set_linear(lm.rnn.cell.i2h, [[1.0]], [0.1])
        set_linear(lm.rnn.cell.h2h, [[0.5]], [-0.1])
        set_linear(lm.rnn.out, [[2.0]])
        for lin in (lm.attention.query_transform, lm.attention.key_transform,
                    lm.attention.value_transform, lm.attention.output_transform):
            set_linear(lin, [[1.0]])
        set_linear(lm.lm_head, [[1.0], [0.0], [-1.0]], [0.1, 0.0, -0.1])
        # tokens 1, 2 embed as 1.0, -1.0; the two cell biases cancel (0.1 - 0.1)
        h1 = math.tanh(1.0)
        h2 = math.tanh(-1.0 + 0.5 * h1)
        y1, y2 = 2 * h1, 2 * h2
        a1 = y1  # one position: weight 1 on itself
        e1, e2 = math.exp(y1 * y2), math.exp(y2 * y2)  # D_key = 1: s_n = k_n q_2 = y_n y_2
        a2 = (e1 * y1 + e2 * y2) / (e1 + e2)
        logits = lm(torch.tensor([[1, 2]]))[0][0].tolist()
        for got, want in zip(logits[0] + logits[1], [a1 + 0.1, 0.0, -a1 - 0.1, a2 + 0.1, 0.0, -a2 - 0.1]):
            self.assertAlmostEqual(got, want, places=13)

    def test_key_and_value_sizes_default_to_hidden(self):
        lm = rnn.RNNLanguageModel(3, 5, 7)
        self.assertEqual(tuple(lm.attention.key_transform.weight.shape), (5, 5))
        self.assertEqual(tuple(lm.attention.value_transform.weight.shape), (5, 5))
        self.assertIs(rnn.HybridLanguageModel, rnn.RNNLanguageModel)

    def test_causal_changing_a_later_token_leaves_earlier_logits(self):
        lm = small_model()
        a = torch.tensor([[3, 4, 5, 6, 7, 8]])
        for n in range(5):
            b = a.clone()
            b[0, n + 1] = 9
            la, lb = lm(a)[0], lm(b)[0]
            torch.testing.assert_close(la[:, :n + 1], lb[:, :n + 1], rtol=0, atol=0)
            self.assertFalse(torch.allclose(la[:, n + 1], lb[:, n + 1]))

    def test_uses_no_forbidden_modules(self):
        tree = ast.parse((REPO / "rnn.py").read_text(encoding="utf-8"))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        forbidden = {"RNN", "RNNCell", "RNNBase", "LSTM", "GRU", "MultiheadAttention", "scaled_dot_product_attention",
                     "multi_head_attention_forward", "rnn_tanh", "rnn_relu", "rnn_tanh_cell", "rnn_relu_cell"}
        self.assertEqual(used & forbidden, set())


class GradientTest(unittest.TestCase):
    def check_recurrence(self, relu):
        torch.manual_seed(3)
        z = torch.randn(2, 5, 3, dtype=F64, requires_grad=True)
        w = (0.5 * torch.randn(3, 3, dtype=F64)).requires_grad_()
        self.assertTrue(torch.autograd.gradcheck(lambda z, w: rnn._Recurrence.apply(z, w, relu), (z, w)))

    def test_recurrence_gradcheck_relu(self):
        self.check_recurrence(True)

    def test_recurrence_gradcheck_tanh(self):
        self.check_recurrence(False)

    def test_attention_gradcheck(self):
        att = rnn.SelfAttention(3, 2, 2).double()
        y = torch.randn(2, 4, 3, dtype=F64, requires_grad=True)
        self.assertTrue(torch.autograd.gradcheck(att, (y,)))

    def test_model_gradients_match_the_step_by_step_model(self):
        # The fast path's gradients for every parameter equal those of the handout's loop.
        for activation in ("relu", "tanh"):
            lm = small_model(activation=activation)
            tokens = torch.tensor([[3, 4, 5, 6, 1], [6, 7, 8, 2, 9]])
            loss_fn = torch.nn.CrossEntropyLoss()
            fast = torch.autograd.grad(rnn.next_token_loss(lm, tokens, loss_fn), list(lm.parameters()))
            _, y = steps(lm.rnn, lm.embeddings(tokens))
            logits = lm.lm_head(torch.stack([lm.attention.step(y[:, :n + 1]) for n in range(y.shape[1])], 1))
            slow = torch.autograd.grad(loss_fn(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1)),
                                       list(lm.parameters()))
            for (name, _), a, b in zip(lm.named_parameters(), fast, slow):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"{activation}: {name}")
