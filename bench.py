"""Benchmark rnn.py's training step and generation against two peers, in one process.

Three models with identical sizes and weights, timed on the same synthetic batch:
  1. literal -- section 7 written as a student following the handout writes it: RNN.step
     with i2h inside the loop, and SelfAttention.step recomputing the keys and values of
     every earlier position at every position (O(T^2) work). Lives here, not in rnn.py.
  2. rnn.py  -- the kit's model (projections hoisted out of the loop, a hand-written
     backward for the recurrence, attention as masked matrix products).
  3. peer    -- nn.RNN + F.scaled_dot_product_attention, PyTorch's own fused modules
     (allowed in a benchmark, never in rnn.py).
It first checks that 1 and 2 give the same loss and gradients, then reports tokens per
second of a full training step (forward, backward, Adam), the ratios 2/1 and 2/3, the
memory autograd keeps for the backward pass (activations: what grows with B and T; on
CUDA also the allocator's peak), and generation speed with and without the key/value cache.

    python3 bench.py                      # the issue's CPU configuration, under 3 minutes
    python3 bench.py --device cuda --batch_size 128 --seq_len 128 --embed_dim 512 --hidden_dim 512 --dk 256 --dv 256
"""

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import rnn


class LiteralLM(rnn.RNNLanguageModel):
    """The handout's per-step model, literally: the same parameters, O(T^2) steps."""

    def logits(self, tokens):
        x = self.embeddings(tokens)
        hiddens, outputs = [], []
        for t in range(tokens.shape[1]):
            h, y = self.rnn.step(x[:, t], hiddens)  # the list of preceding states, as the handout passes it
            hiddens.append(h)
            outputs.append(y)
        ys = torch.stack(outputs, 1)
        attn = torch.stack([self.attention.step(ys[:, :t + 1]) for t in range(ys.shape[1])], 1)
        return self.lm_head(attn)

    def loss(self, tokens):
        logits = self.logits(tokens)[:, :-1]
        targets = tokens[:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=rnn.PAD_ID, reduction="sum"), (targets != rnn.PAD_ID).sum()


class PeerLM(nn.Module):
    """nn.RNN + F.scaled_dot_product_attention with rnn.py's weights (same function)."""

    def __init__(self, model):
        super().__init__()
        c = model.config
        self.embeddings = copy.deepcopy(model.embeddings)
        self.rnn = nn.RNN(c["embed_dim"], c["hidden_dim"], nonlinearity=c["activation"], bias=False, batch_first=True)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(model.rnn.cell.i2h.weight)
            self.rnn.weight_hh_l0.copy_(model.rnn.cell.h2h.weight)
        self.out = copy.deepcopy(model.rnn.out)
        self.q = copy.deepcopy(model.attention.query_transform)
        self.k = copy.deepcopy(model.attention.key_transform)
        self.v = copy.deepcopy(model.attention.value_transform)
        self.o = copy.deepcopy(model.attention.output_transform)
        self.lm_head = copy.deepcopy(model.lm_head)

    def loss(self, tokens):
        y = self.out(self.rnn(self.embeddings(tokens))[0])
        a = self.o(F.scaled_dot_product_attention(self.q(y), self.k(y), self.v(y), is_causal=True))
        logits = self.lm_head(a)[:, :-1]
        targets = tokens[:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=rnn.PAD_ID, reduction="sum"), (targets != rnn.PAD_ID).sum()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_for_backward(model, tokens):
    """Bytes of the tensors autograd keeps for the backward pass of one step (activation memory)."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[(s.data_ptr(), t.device)] = s.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_sum, n = model.loss(tokens)
    del loss_sum
    return sum(storages.values())


def grads_of(model, tokens):
    model.zero_grad(set_to_none=True)
    loss_sum, n = model.loss(tokens)
    loss = loss_sum / n
    loss.backward()
    return float(loss.detach()), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def time_training(model, tokens, repeats, warmup, lr=1e-3):
    """Median seconds of a full training step (forward, backward, Adam), and its memory."""
    device = tokens.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_sum, n = model.loss(tokens)
        (loss_sum / n).backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return statistics.median(times), (saved_for_backward(model, tokens), peak)


def time_generation(model, prompt, num_tokens, use_cache, repeats):
    times = []
    for _ in range(repeats):
        sync(prompt.device)
        start = time.perf_counter()
        torch.manual_seed(0)
        out = model.generate(prompt, num_tokens, temperature=1.0, use_cache=use_cache)
        sync(prompt.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def check_equal(name, loss, loss_kit, grad_diff, limit=1e-5):
    """Print the agreement of a model with rnn.py; stop the benchmark if they differ."""
    ok = abs(loss - loss_kit) <= limit and grad_diff <= limit
    print(f"equality, {name + ' vs rnn.py:':<21} loss {loss:.6f} vs {loss_kit:.6f} "
          f"(|diff| {abs(loss - loss_kit):.1e}), max |grad diff| {grad_diff:.1e}: "
          f"{'OK' if ok else 'FAILED'} (limit {limit:g})")
    if not ok:
        raise SystemExit(f"bench.py: error: rnn.py and the {name} model disagree")


def mib(n):
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


def parse_args(argv=None):
    p = rnn.OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=rnn.positive(int), default=128, help="sequences per batch (default: %(default)s)")
    p.add_argument("--seq_len", type=rnn.positive(int), default=256, help="tokens per sequence (default: %(default)s)")
    p.add_argument("--embed_dim", type=rnn.positive(int), default=128, help="embedding size (default: %(default)s)")
    p.add_argument("--hidden_dim", type=rnn.positive(int), default=128, help="hidden size (default: %(default)s)")
    p.add_argument("--dk", type=rnn.positive(int), default=128, help="key size (default: %(default)s)")
    p.add_argument("--dv", type=rnn.positive(int), default=128, help="value size (default: %(default)s)")
    p.add_argument("--vocab_size", type=rnn.positive(int), default=1024, help="vocabulary (default: %(default)s)")
    p.add_argument("--repeats", type=rnn.positive(int), default=5, help="timed steps of rnn.py and the peer (default: %(default)s)")
    p.add_argument("--literal_repeats", type=rnn.positive(int), default=1,
                   help="timed steps of the literal model, after the equality check's step (default: %(default)s)")
    p.add_argument("--skip_literal", action="store_true", help="time only rnn.py and the peer (large sizes)")
    p.add_argument("--gen_tokens", type=rnn.positive(int), default=256, help="tokens generated (default: %(default)s)")
    p.add_argument("--gen_batch", type=rnn.positive(int), default=128, help="rows generated at once (default: %(default)s)")
    p.add_argument("--device", type=str, default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--seed", type=rnn.seed_int, default=0, help="seed of weights and batch (default: %(default)s)")
    args = p.parse_args(argv)
    if args.vocab_size < 4:
        p.error(f"--vocab_size must be at least 4 (ids 0-2 are special), got {args.vocab_size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        device = rnn.resolve_device(args.device)
    except rnn.InputError as e:
        raise SystemExit(f"bench.py: error: {e}")
    B, T = args.batch_size, args.seq_len
    print(f"bench: batch {B}, length {T}, embed {args.embed_dim}, hidden {args.hidden_dim}, dk {args.dk}, "
          f"dv {args.dv}, vocab {args.vocab_size}, float32 on {device} ({torch.get_num_threads()} threads), "
          f"torch {torch.__version__}")
    torch.manual_seed(args.seed)
    kit = rnn.RNNLanguageModel(args.vocab_size, args.embed_dim, args.hidden_dim, args.dk, args.dv).to(device)
    tokens = torch.randint(3, args.vocab_size, (B, T), device=device)
    peer = PeerLM(kit).to(device)

    tokens_per_step = B * T
    rows = []
    loss_kit, g_kit = grads_of(kit, tokens)
    loss_peer, g_peer = grads_of(peer, tokens)
    peer_names = {"rnn.cell.i2h.weight": "rnn.weight_ih_l0", "rnn.cell.h2h.weight": "rnn.weight_hh_l0",
                  "rnn.out.weight": "out.weight", "attention.query_transform.weight": "q.weight",
                  "attention.key_transform.weight": "k.weight", "attention.value_transform.weight": "v.weight",
                  "attention.output_transform.weight": "o.weight"}
    peer_diff = max((g_kit[n] - g_peer[peer_names.get(n, n)]).abs().max().item() for n in g_kit)
    if not args.skip_literal:
        literal = LiteralLM(**kit.config).to(device)
        literal.load_state_dict(kit.state_dict())
        loss_lit, g_lit = grads_of(literal, tokens)
        grad_diff = max((g_kit[n] - g_lit[n]).abs().max().item() for n in g_kit)
        check_equal("literal", loss_lit, loss_kit, grad_diff)
    check_equal("peer", loss_peer, loss_kit, peer_diff)

    t_kit, m_kit = time_training(kit, tokens, args.repeats, warmup=1)
    t_peer, m_peer = time_training(peer, tokens, args.repeats, warmup=1)
    rows.append(("rnn.py", t_kit, m_kit))
    rows.append(("peer (nn.RNN + SDPA)", t_peer, m_peer))
    if not args.skip_literal:
        # The equality check's step was its warm-up; one more timed step is a median of
        # one unless --literal_repeats asks for more (each costs tens of seconds on a CPU).
        t_lit, m_lit = time_training(literal, tokens, args.literal_repeats, warmup=0)
        rows.append(("literal (handout, per step)", t_lit, m_lit))
    print(f"\ntraining step (forward, backward, Adam), median of repeats; {tokens_per_step:,} tokens a step")
    print(f"  {'model':<30}{'s/step':>10}{'tokens/s':>12}{'saved for backward':>20}{'peak (CUDA)':>14}")
    for name, t, (saved, peak) in rows:
        print(f"  {name:<30}{t:>10.3f}{tokens_per_step / t:>12,.0f}{mib(saved):>20}{mib(peak):>14}")
    if not args.skip_literal:
        print(f"  speed-up rnn.py / literal: {t_lit / t_kit:.1f}x  (target >= 10x)")
    print(f"  rnn.py time / peer time:   {t_kit / t_peer:.2f}  (target <= 1.25)")

    kit.eval()
    prompt = torch.randint(3, args.vocab_size, (args.gen_batch, 16), device=device)
    g_cached, out_cached = time_generation(kit, prompt, args.gen_tokens, True, repeats=3)
    g_plain, out_plain = time_generation(kit, prompt, args.gen_tokens, False, repeats=1)
    same = torch.equal(out_cached, out_plain)
    n_new = out_cached.numel()
    print(f"\ngeneration of {args.gen_tokens} tokens x {args.gen_batch} rows after a 16-token prompt "
          f"(temperature 1, same seed; same tokens: {'yes' if same else 'NO'})")
    print(f"  with the cache:    {g_cached:8.3f} s  {n_new / g_cached:>10,.0f} tokens/s")
    print(f"  without the cache: {g_plain:8.3f} s  {n_new / g_plain:>10,.0f} tokens/s")
    print(f"  speed-up: {g_plain / g_cached:.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
