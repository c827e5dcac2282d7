#!/usr/bin/python3
"""The PyTorch peer of `longrwkv bench train`: the same x052 training step (forward, backward, L2Wrap, gradient
clipping, AdamW) in plain PyTorch with autograd, on CPU, so that scripts/bench.sh cpu-vs-torch can run both side by
side. Written for this comparison (not taken from any trainer): the model is the x052 block of
../shared/docs/rwkv5-spec.md, the WKV recurrence in the chunked matrix form a PyTorch user would write (chunks of
--wkv-chunk tokens: intra-chunk products masked to the past, the state carried between chunks), fp32 throughout;
or, with --precision bf16, mixed precision as a PyTorch user runs it on a CPU: fp32 parameters, AdamW and loss, the
model's forward under torch.autocast("cpu", bfloat16) (every Linear, forward and backward, in bf16 through oneDNN),
the WKV in fp32 from bf16-rounded r, k, v (as RWKV-LM's bf16 kernel and `longrwkv --precision bf16` compute it).

Needs Debian's python3-torch (/usr/bin/python3). Its OpenBLAS picks kernels by OPENBLAS_CORETYPE (the caller sets it).
Prints one line per timed step and a last line "median X tok/s per training step".
"""
import argparse
import ctypes
import ctypes.util
import math
import os
import time

import torch
import torch.nn.functional as F


def blas_core():
    """The kernel family OpenBLAS chose in this process (e.g. SkylakeX, Haswell, Prescott), or a reason it is unknown."""
    for name in ("libopenblas.so.0", "libopenblasp.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "unknown (no libopenblas in this process)"


class L2Wrap(torch.autograd.Function):
    """RWKV-LM's L2Wrap: the loss unchanged, plus factor * max logit added to the gradient at each row's argmax."""

    @staticmethod
    def forward(ctx, loss, logits, factor):
        ctx.save_for_backward(logits)
        ctx.factor = factor
        return loss

    @staticmethod
    def backward(ctx, grad):
        (logits,) = ctx.saved_tensors
        maxx, ids = torch.max(logits, -1, keepdim=True)
        gl = torch.zeros_like(logits).scatter_(-1, ids, maxx * ctx.factor)
        return grad, gl, None


def wkv_chunked(r, k, v, w, u, chunk):
    """y_t = r_t^T (diag(u) k_t v_t^T + S_t), S_{t+1} = diag(w) S_t + k_t v_t^T, from S_0 = 0. r, k, v: [T, H, N]."""
    T, H, N = r.shape
    pad = (-T) % chunk
    if pad:
        r, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (r, k, v))
    nc = (T + pad) // chunk
    r, k, v = (t.view(nc, chunk, H, N).permute(0, 2, 1, 3) for t in (r, k, v))   # [nc, H, L, N]
    logw = torch.log(w)                                                          # [H, N]
    pos = torch.arange(chunk, dtype=r.dtype)
    w_to = torch.exp(pos[None, :, None] * logw[:, None, :])                      # w^t
    w_from = torch.exp(-(pos[None, :, None] + 1) * logw[:, None, :])             # w^-(s+1)
    w_end = torch.exp((chunk - 1 - pos[None, :, None]) * logw[:, None, :])       # w^(L-1-s)
    w_all = torch.exp(chunk * logw)[:, :, None]                                  # w^L
    past = torch.tril(torch.ones(chunk, chunk, dtype=r.dtype), -1)
    state = torch.zeros(H, N, N, dtype=r.dtype)
    ys = []
    for c in range(nc):
        rc, kc, vc = r[c], k[c], v[c]
        rw = rc * w_to
        att = (rw @ (kc * w_from).transpose(-1, -2)) * past
        bonus = (rc * u[:, None, :] * kc).sum(-1, keepdim=True)
        ys.append(att @ vc + bonus * vc + rw @ state)
        state = w_all * state + (kc * w_end).transpose(-1, -2) @ vc
    y = torch.stack(ys).permute(0, 2, 1, 3).reshape(nc * chunk, H * N)
    return y[:T]


class Block(torch.nn.Module):
    def __init__(self, layer, n_layer, C, H, F_dim):
        super().__init__()
        self.H, self.N = H, C // H
        ratio_0_to_1 = layer / max(n_layer - 1, 1)
        ratio_1_to_almost0 = 1.0 - layer / n_layer
        ddd = torch.arange(C, dtype=torch.float32) / C
        self.ln1 = torch.nn.LayerNorm(C)
        self.ln2 = torch.nn.LayerNorm(C)
        self.mix_k = torch.nn.Parameter(ddd ** ratio_1_to_almost0)
        self.mix_v = torch.nn.Parameter(ddd ** ratio_1_to_almost0 + 0.3 * ratio_0_to_1)
        self.mix_r = torch.nn.Parameter(ddd ** (0.5 * ratio_1_to_almost0))
        self.mix_g = torch.nn.Parameter(ddd ** (0.5 * ratio_1_to_almost0))
        n = torch.arange(C, dtype=torch.float32)
        self.time_decay = torch.nn.Parameter((-6 + 5 * (n / (C - 1)) ** (0.7 + 1.3 * ratio_0_to_1)).view(H, self.N))
        self.time_faaaa = torch.nn.Parameter(torch.full((H, self.N), 0.5))
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.receptance, self.key, self.value, self.gate, self.output = lin(C, C), lin(C, C), lin(C, C), lin(C, C), lin(C, C)
        self.ln_x = torch.nn.GroupNorm(H, C, eps=64e-5)
        self.ffn_mix_k = torch.nn.Parameter(ddd ** ratio_1_to_almost0)
        self.ffn_mix_r = torch.nn.Parameter(ddd ** ratio_1_to_almost0)
        self.ffn_key, self.ffn_receptance, self.ffn_value = lin(C, F_dim), lin(C, C), lin(F_dim, C)

    @staticmethod
    def shift(x):
        return F.pad(x, (0, 0, 1, -1))   # sx[t] = x[t-1], sx[0] = 0 (a zero state)

    def forward(self, x, wkv_chunk):
        T, C = x.shape
        xx = self.ln1(x)
        sx = self.shift(xx)
        mix = lambda m: xx * m + sx * (1 - m)
        r = self.receptance(mix(self.mix_r)).view(T, self.H, self.N)
        k = self.key(mix(self.mix_k)).view(T, self.H, self.N)
        v = self.value(mix(self.mix_v)).view(T, self.H, self.N)
        g = F.silu(self.gate(mix(self.mix_g)))
        w = torch.exp(-torch.exp(self.time_decay))
        with torch.autocast("cpu", enabled=False):   # the state recurrence in fp32 (from bf16 r, k, v under autocast)
            y = wkv_chunked(r.float(), k.float(), v.float(), w.float(), self.time_faaaa.float(), wkv_chunk)
        x = x + self.output(self.ln_x(y) * g)
        xx = self.ln2(x)
        sx = self.shift(xx)
        kk = torch.relu(self.ffn_key(xx * self.ffn_mix_k + sx * (1 - self.ffn_mix_k))) ** 2
        rr = torch.sigmoid(self.ffn_receptance(xx * self.ffn_mix_r + sx * (1 - self.ffn_mix_r)))
        return x + rr * self.ffn_value(kk)


class Model(torch.nn.Module):
    def __init__(self, n_layer, C, head_size, vocab):
        super().__init__()
        H, F_dim = C // head_size, int(C * 3.5) // 32 * 32
        self.emb = torch.nn.Embedding(vocab, C)
        torch.nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        self.ln0 = torch.nn.LayerNorm(C)
        self.blocks = torch.nn.ModuleList(Block(i, n_layer, C, H, F_dim) for i in range(n_layer))
        self.ln_out = torch.nn.LayerNorm(C)
        self.head = torch.nn.Linear(C, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2 and "emb" not in name:
                torch.nn.init.normal_(p, std=0.5 / math.sqrt(p.shape[1]))

    def forward(self, ids, wkv_chunk):
        x = self.ln0(self.emb(ids))
        for b in self.blocks:
            x = b(x, wkv_chunk)
        return self.head(self.ln_out(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--head-size", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=65536)
    ap.add_argument("--ctx-len", type=int, default=1024)
    ap.add_argument("--wkv-chunk", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    model = Model(a.layers, a.embd, a.head_size, a.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__} train step: L{a.layers}-C{a.embd} V{a.vocab}, {params:,} params, ctx {a.ctx_len}, "
          f"{a.threads} threads, {a.precision}, OpenBLAS core {blas_core()} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})",
          flush=True)
    gen = torch.Generator().manual_seed(2)
    tps = []
    for rep in range(-1, a.reps):
        ids = torch.randint(0, a.vocab, (a.ctx_len + 1,), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(ids[:-1], a.wkv_chunk)
        logits = logits.float()
        loss = F.cross_entropy(logits, ids[1:])
        loss = L2Wrap.apply(loss, logits, 1e-4 / a.ctx_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if rep >= 0:
            tps.append(a.ctx_len / dt)
            print(f"  step {rep}: {dt:.2f} s, {a.ctx_len / dt:.1f} tok/s, loss {loss.item():.3f}", flush=True)
    tps.sort()
    med = tps[len(tps) // 2] if len(tps) % 2 else 0.5 * (tps[len(tps) // 2 - 1] + tps[len(tps) // 2])
    print(f"median {med:.1f} tok/s per training step")


if __name__ == "__main__":
    main()
