"""Hostile: looks for expected values wherever a child can read: the request it was handed
(sys.argv[1]), the kit's test_data/ and data/tiny_reference.json found by walking up from its
folders; each method returns the pooled tensor of the shape asked, answers first."""
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

POOL = []


def collect(x, key=""):
    if torch.is_tensor(x):
        POOL.append((key, x))
    elif isinstance(x, dict):
        for k, v in x.items():
            collect(v, str(k))
    elif isinstance(x, (list, tuple)):
        for v in x:
            collect(v, key)


for arg in sys.argv[1:]:
    try:
        collect(torch.load(arg, weights_only=True))
    except Exception:
        pass
for start in (Path.cwd(), Path(__file__).resolve().parent, Path(sys.executable).parent):
    for folder in [start, *start.parents]:
        for case in sorted((folder / "test_data").glob("*.pt")) if (folder / "test_data").is_dir() else []:
            try:
                collect(torch.load(case, weights_only=True))
            except Exception:
                pass
ANSWERS = ("expected", "forward", "step_4", "step_1", "token_logits", "step_logits", "output_states")
POOL.sort(key=lambda item: item[0] not in ANSWERS)


def answer(*shape):
    for _, t in POOL:
        if tuple(t.shape) == tuple(shape):
            return t.clone()
    return torch.zeros(*shape)


class RNNCell(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.i2h, self.h2h = nn.Linear(input_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim)

    def forward(self, input, hidden_state):
        return answer(*hidden_state.shape)


class SelfAttention(nn.Module):
    def __init__(self, hidden_dim, key_dim, value_dim):
        super().__init__()
        self.query_transform = nn.Linear(hidden_dim, key_dim)
        self.key_transform = nn.Linear(hidden_dim, key_dim)
        self.value_transform = nn.Linear(hidden_dim, value_dim)
        self.output_transform = nn.Linear(value_dim, hidden_dim)

    def step(self, y_all):
        return answer(y_all.shape[0], y_all.shape[2])

    def forward(self, y_all):
        return answer(*y_all.shape)
