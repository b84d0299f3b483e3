"""PyTorch-eager peer of bench/engine.ts: the same U-Net training step, timed the same way.

Prints one JSON line: {"torch": version, "threads": n, "samples_per_s": [per-repetition rates]}.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import UNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--states", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = UNet()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x0 = torch.randn(a.batch, 1, a.size, a.size)
    labels = torch.randint(0, 10, (a.batch,))
    abar = torch.linspace(0.999, 0.01, a.states)

    def step():
        t = torch.randint(0, a.states, (a.batch,))
        noise = torch.randn_like(x0)
        ab = abar[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        ctx = torch.cat([(t.float() / (a.states - 1)).unsqueeze(1), F.one_hot(labels, 10).float()], 1)
        loss = F.mse_loss(model(xt, ctx), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.reps):
        start = time.perf_counter()
        for _ in range(a.steps):
            step()
        rates.append(a.batch * a.steps / (time.perf_counter() - start))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "samples_per_s": rates}))


if __name__ == "__main__":
    main()
