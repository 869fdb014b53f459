"""Hostile: a thread sends fake protocol events on the runner's pipe (sys.argv[2]) -- a "start"
and a "done" of every check, over and over -- while every call hangs; and a call of RNNCell
writes a forged result file (ok, a 5 MB message with terminal escapes, 100,000 made-up uses)
before announcing it done."""
import json
import os
import sys
import threading
import time

import torch
import torch.nn as nn

PIPE = int(sys.argv[2])
OUT = torch.load(sys.argv[1], weights_only=True)["out"]


def flood():
    while True:
        for index in range(40):
            for kind in ("start", "done"):
                try:
                    os.write(PIPE, (json.dumps({"event": kind, "index": index}) + "\n").encode())
                except OSError:
                    return
        time.sleep(0.2)


threading.Thread(target=flood, daemon=True).start()


class RNNCell(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.i2h, self.h2h = nn.Linear(input_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim)

    def forward(self, input, hidden_state):
        forged = {"ok": True, "value": hidden_state * 0, "message": "\x1b[2J\x1b[31m" * 500_000,
                  "uses": [("nn.RNN \x1b[31m" + "x" * 500, i) for i in range(100_000)]}
        for index in range(40):
            torch.save(forged, os.path.join(OUT, f"{index}.pt"))
        time.sleep(1000)


class SelfAttention(nn.Module):
    def __init__(self, hidden_dim, key_dim, value_dim):
        super().__init__()

    def step(self, y_all):
        time.sleep(1000)

    def forward(self, y_all):
        time.sleep(1000)
