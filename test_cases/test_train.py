"""train: the starter's loop (zero_grad, clipping, loss points every val_index batches, validation
on the first validation batch), run on the grader's stand-in model (test_cases/stand_ins.py), so
that it measures train alone."""

import torch
import torch.nn as nn

from test_cases.helpers import ComponentTest, check_losses, check_tensor
from test_cases.stand_ins import stand_in_lm


def train_run(c, rnn, index):
    """(what train returned, the stand-in's state_dict after it) for run ``index`` of the case."""
    run = c["runs"][index]
    lm = stand_in_lm(c["sizes"], c["state"])
    optimizer = torch.optim.Adam(lm.parameters(), lr=c["lr"])
    result = rnn.train(lm, run["train_batches"], run["valid_batches"], nn.CrossEntropyLoss(), optimizer,
                       run["num_sequences"], run["batch_size"])
    return result, lm.state_dict()


class TrainTest(ComponentTest):
    RUN_INPUTS = ("num_sequences", "batch_size", "train_batches", "valid_batches")

    @classmethod
    def inputs(cls, c):
        """Each run's batches and schedule; its losses and final weights stay with the runner."""
        return {"sizes": c["sizes"], "state": c["state"], "lr": c["lr"],
                "runs": [{k: run[k] for k in cls.RUN_INPUTS} for run in c["runs"]]}

    def check_run(self, index):
        run = self.c["runs"][index]
        result, state = self.computed()
        what = f"train(num_sequences={run['num_sequences']}, batch_size={run['batch_size']})"
        self.assertEqual(len(result), 2, f"{what} should return (train_losses, valid_losses)")
        check_losses(f"{what} training losses", result[0], run["train_losses"])
        check_losses(f"{what} validation losses", result[1], run["valid_losses"])
        for name, value in run["final_state"].items():
            check_tensor(f"{what}: the stand-in model's weight {name} after training", state[name], value)

    @staticmethod
    def compute_every_batch(c, rnn):
        return train_run(c, rnn, 0)

    def test_every_batch(self):
        """train(24 sequences, batch 2): val_index 1, a point after every batch"""
        self.check_run(0)

    @staticmethod
    def compute_every_fifth_batch(c, rnn):
        return train_run(c, rnn, 1)

    def test_every_fifth_batch(self):
        """train(100 sequences, batch 2): val_index 5"""
        self.check_run(1)

    @staticmethod
    def compute_batch_of_four(c, rnn):
        return train_run(c, rnn, 2)

    def test_batch_of_four(self):
        """train(45 sequences, batch 4): val_index 1, 11 batches"""
        self.check_run(2)

    @staticmethod
    def compute_batch_of_three(c, rnn):
        return train_run(c, rnn, 3)

    def test_batch_of_three(self):
        """train(64 sequences, batch 3): val_index 2"""
        self.check_run(3)
