"""An honest student's rnn.py, as a student writes one: the imports and idioms students commonly
use (the static check must find nothing here). Not a working solution: the check reads source."""

from __future__ import annotations

import argparse
import collections
import copy
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import AutoTokenizer

os.environ["TOKENIZERS_PARALLELISM"] = "false"
warnings.filterwarnings("ignore")
logger = logging.getLogger(__name__)
torch.manual_seed(10601)
random.seed(0)
np.random.seed(0)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICE = torch.device("mps")
torch.backends.cudnn.deterministic = True


@dataclass
class Config:
    embed_dim: int = 128
    hidden_dim: int = 128
    sizes: List[int] = field(default_factory=list)


class SentenceDataset(Dataset):
    def __init__(self, path: str):
        with open(path) as f:
            self.sequences = [torch.tensor(s) for s in json.load(f)]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, idx):
        return self.sequences[idx]


class RNNCell(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.i2h = nn.Linear(input_dim, hidden_dim)
        self.h2h = nn.Linear(hidden_dim, hidden_dim)
        nn.init.xavier_uniform_(self.i2h.weight)
        for i in range(2):
            setattr(self, f"extra_{i}", nn.Linear(hidden_dim, hidden_dim))

    def forward(self, input: torch.Tensor, hidden_state: Optional[torch.Tensor] = None) -> torch.Tensor:
        extra = getattr(self, f"extra_{0}")
        return torch.relu(self.i2h(input) + self.h2h(hidden_state)) + 0 * extra(hidden_state)


class RNN(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super(RNN, self).__init__()
        self.cell = RNNCell(input_dim, hidden_dim)
        self.hidden_dim = hidden_dim

    def step(self, input, hidden_prev=None):
        if hidden_prev is None:
            hidden_prev = input.new_zeros(input.shape[0], self.hidden_dim)
        return self.cell(input, hidden_prev)

    def forward(self, sequence):
        outputs = [self.step(sequence[:, t]) for t in range(sequence.shape[1])]
        return torch.stack(outputs, dim=1)


class SelfAttention(nn.Module):
    def __init__(self, hidden_dim, key_dim, value_dim):
        super().__init__()
        self.query_transform = nn.Linear(hidden_dim, key_dim)
        self.key_transform = nn.Linear(hidden_dim, key_dim)
        self.value_transform = nn.Linear(hidden_dim, value_dim)
        self.key_dim = key_dim
        for name in ("query_transform", "key_transform"):
            assert getattr(self, name) is not None

    def forward(self, y_all):
        q, k, v = self.query_transform(y_all), self.key_transform(y_all), self.value_transform(y_all)
        scores = q @ k.transpose(1, 2) / math.sqrt(self.key_dim)
        mask = torch.tril(torch.ones(scores.shape[-1], scores.shape[-1], dtype=torch.bool))
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.bmm(nn.functional.softmax(scores, dim=-1), v)


class RNNLanguageModel(nn.Module):
    def __init__(self, embed_dim, hidden_dim, vocab_size, key_dim=None, value_dim=None):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embed_dim)
        self.rnn = RNN(embed_dim, hidden_dim)
        self.attention = SelfAttention(hidden_dim, key_dim or hidden_dim, value_dim or hidden_dim)
        self.lm_head = nn.Linear(value_dim or hidden_dim, vocab_size)

    def forward(self, tokens) -> "torch.Tensor":
        return self.lm_head(self.attention(self.rnn(self.embeddings(tokens))))

    def select_token(self, token_logits, temperature):
        if temperature == 0:
            return torch.argmax(token_logits, dim=-1)
        probs = F.softmax(token_logits / temperature, dim=-1)
        return torch.distributions.Categorical(probs=probs).sample()

    @torch.no_grad()
    def generate(self, tokens, max_tokens=10, temperature=0.0) -> "RNNLanguageModel":
        print(f"{self.__class__.__name__} generating {max_tokens} tokens")
        return torch.multinomial(torch.ones(3), 1)


def complete(lm, tokenizer, prefix: str, num_tokens: int = 64, temperature: float = 0.0) -> str:
    tokens = torch.tensor(tokenizer.encode(prefix)).unsqueeze(0)
    return tokenizer.decode(lm.generate(tokens, num_tokens, temperature)[0])


def validate(lm, dataset, loss_fn):
    lm.eval()
    total = 0.0
    with torch.no_grad():
        for batch in dataset:
            total += loss_fn(lm(batch[:, :-1]).transpose(1, 2), batch[:, 1:]).item()
    lm.train()
    return total / max(len(dataset), 1)


def train(lm, train_data, valid_data, loss_fn, optimizer, num_sequences, batch_size):
    losses: Dict[str, List[float]] = defaultdict(list)
    counts = Counter()
    start = time.perf_counter()
    for i, batch in enumerate(tqdm(train_data, desc="training", file=sys.stdout)):
        optimizer.zero_grad()
        loss = F.cross_entropy(lm(batch[:, :-1]).transpose(1, 2), batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        losses["train"].append(loss.item())
        counts["batches"] += 1
        if i * batch_size >= num_sequences:
            break
    logger.info("took %.1f s", time.perf_counter() - start)
    best = copy.deepcopy(lm.state_dict())
    return losses["train"], [validate(lm, valid_data, loss_fn)], best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_data", type=str)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    print(vars(args))
    for key, value in vars(args).items():
        print(f"{key}: {value}")
    lr = getattr(args, "lr", 1e-3)
    out = Path("outputs")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "args.json"), "w") as f:
        json.dump(vars(args), f)
    tokenizer = AutoTokenizer.from_pretrained("my_tokenizer")
    lm = RNNLanguageModel(128, 128, tokenizer.vocab_size).to(DEVICE)
    optimizer = torch.optim.Adam(lm.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    loader = DataLoader(SentenceDataset(args.train_data), batch_size=8, shuffle=True)
    train_losses, valid_losses, best = train(lm, loader, loader, nn.CrossEntropyLoss(), optimizer, 100, 8)
    scheduler.step()
    torch.save(best, out / "model.pt")
    lm.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    print(f"final loss {train_losses[-1]:.4f}, mean {np.mean(train_losses):.4f}", file=sys.stderr)
    if args.plot:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            plt = None
        if plt is not None:
            plt.plot(train_losses, label="train")
            plt.legend()
            plt.savefig(out / "losses.png")
    collections.OrderedDict(a=1)
    if not train_losses:
        sys.exit(1)


if __name__ == "__main__":
    main()
