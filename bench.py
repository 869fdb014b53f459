"""Benchmark rnn.py's training step and generation against two peers, in one process.

Three models with identical sizes and weights, timed on the same synthetic batch:
  1. literal -- tests/literal/rnn.py, the starter completed as a student following the
     handout writes it: RNN.step one position at a time, SelfAttention.step recomputing
     the keys and values of every earlier position at every position (O(T^2) work).
  2. rnn.py  -- the kit's model (projections hoisted out of the loop, a hand-written
     backward for the recurrence, attention as masked matrix products).
  3. peer    -- nn.RNN + F.scaled_dot_product_attention, PyTorch's own fused modules
     (allowed in a benchmark, never in rnn.py).
It first checks that the three give the same loss and gradients, then reports tokens per
second of a full training step (forward, backward, Adam) and the ratios rnn.py/literal and
rnn.py/peer. The literal model keeps O(B T^2) activations for its backward pass, so it is
timed on fewer rows (--literal_rows) and compared per token with rnn.py on those same
rows. Generation is timed with and without the key/value cache, alternating the two, as a
median of repeats with its spread: greedy (the target; it measures what the cache saves)
and at temperature 1, where the starter's torch.multinomial draw, the same in both, takes
most of a cached step. The process's peak memory is printed at the end.

    python3 bench.py                      # the handout's defaults on a CPU: one to one and a half minutes, under 3 GB
    python3 bench.py --check              # exit status 1 when a target is missed
    python3 bench.py --device cuda --embed_dim 512 --hidden_dim 512 --dk 256 --dv 256
"""

import argparse
import importlib.util
import resource
import statistics
import sys
import time
from pathlib import Path

from kit.cli import SEED_TYPE, OneLineParser, interrupt_exits, number, resolve_device
from kit.files import InputError

with interrupt_exits("bench.py: interrupted", active=__name__ == "__main__"):  # torch takes seconds to import
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import rnn

LITERAL_PATH = Path(__file__).resolve().parent / "tests" / "literal" / "rnn.py"
TARGETS = {"literal": 10.0, "peer": 1.25, "generation": 5.0}


def load_literal():
    """The literal completion of the starter, imported from its file (it shares no code with rnn.py)."""
    spec = importlib.util.spec_from_file_location("literal_rnn", LITERAL_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PeerLM(nn.Module):
    """nn.RNN + F.scaled_dot_product_attention with rnn.py's weights (the same function)."""

    def __init__(self, lm):
        super().__init__()
        c = lm.config
        E, H, V, dk, dv = c["embed_dim"], c["hidden_dim"], c["vocab_size"], c["key_dim"], c["value_dim"]
        self.embeddings = nn.Embedding(V, E)
        self.rnn = nn.RNN(E, H, nonlinearity=c["activation"], batch_first=True)
        self.out = nn.Linear(H, H)
        self.q, self.k, self.v, self.o = nn.Linear(H, dk), nn.Linear(H, dk), nn.Linear(H, dv), nn.Linear(dv, H)
        self.lm_head = nn.Linear(H, V)
        self.load_state_dict({self.NAMES.get(name, name): value for name, value in lm.state_dict().items()})

    def forward(self, tokens):
        y = self.out(self.rnn(self.embeddings(tokens))[0])
        a = self.o(F.scaled_dot_product_attention(self.q(y), self.k(y), self.v(y), is_causal=True))
        return self.lm_head(a), None, y

    # nn.RNN's names for the weights rnn.py calls rnn.cell.*: to compare gradients.
    NAMES = {"rnn.cell.i2h.weight": "rnn.weight_ih_l0", "rnn.cell.h2h.weight": "rnn.weight_hh_l0",
             "rnn.cell.i2h.bias": "rnn.bias_ih_l0", "rnn.cell.h2h.bias": "rnn.bias_hh_l0",
             "attention.query_transform.weight": "q.weight", "attention.query_transform.bias": "q.bias",
             "attention.key_transform.weight": "k.weight", "attention.key_transform.bias": "k.bias",
             "attention.value_transform.weight": "v.weight", "attention.value_transform.bias": "v.bias",
             "attention.output_transform.weight": "o.weight", "attention.output_transform.bias": "o.bias",
             "rnn.out.weight": "out.weight", "rnn.out.bias": "out.bias"}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def grads_of(lm, tokens):
    lm.zero_grad(set_to_none=True)
    loss = rnn.next_token_loss(lm, tokens, nn.CrossEntropyLoss())
    loss.backward()
    return float(loss.detach()), {name: p.grad.detach().clone() for name, p in lm.named_parameters()}


def check_equal(name, lm, kit, tokens, names=None, limit=1e-5):
    """Print the agreement of a model with rnn.py on one batch; stop the benchmark if they differ."""
    loss, grads = grads_of(lm, tokens)
    loss_kit, grads_kit = grads_of(kit, tokens)
    grad_diff = max((grads_kit[n] - grads[(names or {}).get(n, n)]).abs().max().item() for n in grads_kit)
    ok = abs(loss - loss_kit) <= limit and grad_diff <= limit
    print(f"equality, {name + ' vs rnn.py:':<21} loss {loss:.6f} vs {loss_kit:.6f} "
          f"(|diff| {abs(loss - loss_kit):.1e}), max |grad diff| {grad_diff:.1e} on {tokens.shape[0]} rows: "
          f"{'OK' if ok else 'FAILED'} (limit {limit:g})")
    if not ok:
        raise SystemExit(f"bench.py: error: rnn.py and the {name} model disagree")


def time_training(lm, tokens, repeats, warmup=1):
    """Median seconds of a full training step (forward, backward, Adam)."""
    device = tokens.device
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(lm.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        rnn.next_token_loss(lm, tokens, loss_fn).backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_generation(lm, prompt, num_tokens, temperature, repeats):
    """Alternate cached and uncached generation; per-repeat seconds of each, and whether the tokens agree."""
    cached, plain, same = [], [], True
    for _ in range(repeats):
        outs = []
        for use_cache, times in ((True, cached), (False, plain)):
            sync(prompt.device)
            torch.manual_seed(0)
            start = time.perf_counter()
            outs.append(lm.generate(prompt, num_tokens, temperature=temperature, use_cache=use_cache))
            sync(prompt.device)
            times.append(time.perf_counter() - start)
        same = same and torch.equal(outs[0], outs[1])
    return cached, plain, same


def missed_targets(ratios, targets=TARGETS):
    """The names of the targets a run missed: the peer ratio is a ceiling, the speed-ups are floors."""
    return [name for name, value in ratios.items()
            if (value > targets[name] if name == "peer" else value < targets[name])]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=number(int, above=0), default=128, help="rows of rnn.py's and the peer's step (default: %(default)s)")
    p.add_argument("--literal_rows", type=number(int, above=0), default=16,
                   help="rows of the literal model's step; its backward keeps O(rows T^2) activations (default: %(default)s)")
    p.add_argument("--seq_len", type=number(int, above=0), default=128, help="tokens per sequence, the prepared data's (default: %(default)s)")
    p.add_argument("--embed_dim", type=number(int, above=0), default=128, help="embedding size (default: %(default)s)")
    p.add_argument("--hidden_dim", type=number(int, above=0), default=128, help="hidden size (default: %(default)s)")
    p.add_argument("--dk", type=number(int, above=0), default=128, help="key size (default: %(default)s)")
    p.add_argument("--dv", type=number(int, above=0), default=128, help="value size (default: %(default)s)")
    p.add_argument("--vocab_size", type=number(int, above=0), default=1024, help="vocabulary (default: %(default)s)")
    p.add_argument("--repeats", type=number(int, above=0), default=5, help="timed steps of each model (default: %(default)s)")
    p.add_argument("--skip_literal", action="store_true", help="time only rnn.py and the peer (large sizes)")
    p.add_argument("--gen_tokens", type=number(int, above=0), default=256, help="tokens generated (default: %(default)s)")
    p.add_argument("--gen_batch", type=number(int, above=0), default=128, help="rows generated at once (default: %(default)s)")
    p.add_argument("--gen_repeats", type=number(int, above=0), default=5,
                   help="alternating repeats of generation with and without the cache (default: %(default)s)")
    p.add_argument("--device", type=str, default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--seed", type=SEED_TYPE, default=rnn.SEED, help="seed of weights and batch (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    return p.parse_args(argv)


def report_training(args, kit, peer, literal, tokens):
    """Time the training step; returns {target name: measured ratio}."""
    B, T = tokens.shape
    t_kit = time_training(kit, tokens, args.repeats)
    t_peer = time_training(peer, tokens, args.repeats)
    rows = [(f"rnn.py, {B} rows", B * T, t_kit), (f"peer (nn.RNN + SDPA), {B} rows", B * T, t_peer)]
    ratios = {"peer": t_kit / t_peer}
    if literal is not None:
        few = tokens[:args.literal_rows]
        t_kit_few = time_training(kit, few, args.repeats)
        t_lit = time_training(literal, few, args.repeats)
        rows += [(f"rnn.py, {few.shape[0]} rows", few.numel(), t_kit_few),
                 (f"literal (tests/literal), {few.shape[0]} rows", few.numel(), t_lit)]
        ratios["literal"] = t_lit / t_kit_few
    print(f"\ntraining step (forward, backward, Adam), median of {args.repeats}; {T} tokens a row")
    print(f"  {'model':<40}{'s/step':>10}{'tokens/s':>12}")
    for name, n, t in rows:
        print(f"  {name:<40}{t:>10.3f}{n / t:>12,.0f}")
    if literal is not None:
        print(f"  speed-up rnn.py / literal, per token on {args.literal_rows} rows: "
              f"{ratios['literal']:.1f}x  (target >= {TARGETS['literal']:g}x)")
    print(f"  rnn.py time / peer time, {B} rows: {ratios['peer']:.2f}  (target <= {TARGETS['peer']:g})")
    return ratios


def report_generation(args, device, kit):
    """Time generation greedy (the target: what the cache saves) and sampled; returns the greedy speed-up."""
    kit.eval()
    generator = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    prompt = torch.randint(3, args.vocab_size, (args.gen_batch, 16), generator=generator).to(device)
    n_new = args.gen_batch * args.gen_tokens
    print(f"\ngeneration of {args.gen_tokens} tokens x {args.gen_batch} rows after a 16-token prompt, "
          f"with the cache and without it (the handout's loop) alternating, {args.gen_repeats} repeats each")
    medians = {}
    for temperature, what in ((0.0, "greedy"), (1.0, "temperature 1, the starter's torch.multinomial draw")):
        cached, plain, same = time_generation(kit, prompt, args.gen_tokens, temperature, args.gen_repeats)
        speedups = sorted(p / c for c, p in zip(cached, plain))
        print(f"  {what} (same tokens both ways: {'yes' if same else 'NO'})")
        for name, times in (("with the cache", cached), ("without", plain)):
            t = statistics.median(times)
            print(f"    {name:<16}{t:8.3f} s  {n_new / t:>10,.0f} tokens/s  (min {min(times):.3f}, max {max(times):.3f})")
        target = f"  (target >= {TARGETS['generation']:g}x)" if temperature == 0 else ""
        print(f"    speed-up: median {statistics.median(speedups):.1f}x, spread {speedups[0]:.1f}x-{speedups[-1]:.1f}x{target}")
        if not same:
            raise SystemExit("bench.py: error: generation with and without the cache gave different tokens")
        medians[temperature] = statistics.median(speedups)
    return medians[0.0]


def main(argv=None):
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
    except InputError as e:
        sys.exit(f"bench.py: error: {e}")
    if args.literal_rows > args.batch_size:
        sys.exit(f"bench.py: error: --literal_rows {args.literal_rows} is more than --batch_size {args.batch_size}")
    B, T = args.batch_size, args.seq_len
    print(f"bench: batch {B} (literal {args.literal_rows}), length {T}, embed {args.embed_dim}, hidden "
          f"{args.hidden_dim}, dk {args.dk}, dv {args.dv}, vocab {args.vocab_size}, float32 on {device} "
          f"({torch.get_num_threads()} threads), torch {torch.__version__}")
    torch.manual_seed(args.seed)
    kit = rnn.RNNLanguageModel(args.embed_dim, args.hidden_dim, args.vocab_size, args.dk, args.dv).to(device)
    tokens = torch.randint(3, args.vocab_size, (B, T), device=device)
    peer = PeerLM(kit).to(device)
    literal = None
    if not args.skip_literal:
        literal = load_literal().RNNLanguageModel(args.embed_dim, args.hidden_dim, args.vocab_size,
                                                  args.dk, args.dv).to(device)
        literal.load_state_dict(kit.state_dict())
        check_equal("literal", literal, kit, tokens[:args.literal_rows])
    check_equal("peer", peer, kit, tokens, PeerLM.NAMES)

    try:
        ratios = report_training(args, kit, peer, literal, tokens)
        ratios["generation"] = report_generation(args, device, kit)
    except KeyboardInterrupt:
        print("bench.py: interrupted", file=sys.stderr)
        sys.exit(130)
    peak = (f", CUDA allocator peak {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
            if device.type == "cuda" else "")
    print(f"\npeak memory of this process: {peak_rss_mib():,.0f} MiB resident{peak}")
    missed = missed_targets(ratios)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
        if args.check:
            sys.exit(1)
    else:
        print("all targets met")


if __name__ == "__main__":
    main()
