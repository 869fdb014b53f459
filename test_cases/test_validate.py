"""validate: the starter's reads the first batch only, so its value is that batch's mean loss."""

import unittest

import torch.nn as nn

from test_cases.helpers import case, check_losses, student, student_lm


class ValidateTest(unittest.TestCase):
    component = "validate"

    def test_validate(self):
        """validate(lm, three batches, CrossEntropyLoss): the first batch's loss"""
        c = case("validate")
        lm = student_lm(c["sizes"], c["state"])
        value = student().validate(lm, c["batches"], nn.CrossEntropyLoss())
        check_losses("validate (the starter's reads the first batch only: its loss, targets shifted by one)",
                     [value], [c["expected"]])
