"""PyTorch peer of bench/bench.ts: the same workloads, settings and timing, written as a PyTorch user would.

Takes one JSON argument (the plan bench.ts also runs), then serves requests, one JSON line each on stdin, so that
bench.ts can take our repetitions and the peer's in turn:
  {"workload": name, "mode": "eager"|"jit"|"bf16"|"compile"} → one timed repetition (set up and warmed up on first use):
                                                {"value": v, "torch": version}
  {"release": name, "mode": ...}              → frees that workload's models: {"ok": true}
Training workloads report samples/s, batched sampling network evaluations/s, latency seconds per sample.
The plan's "mode" is "eager" (default), "jit": sampling networks traced, frozen and passed through
torch.jit.optimize_for_inference, as a PyTorch user prepares a model for inference, or "bf16": training with the
forward under torch.autocast(dtype=torch.bfloat16), the loss on its float32 output, or "compile": training with the
network through torch.compile(mode="reduce-overhead") (PyTorch 2, CUDA graphs on a GPU). Sampling loads the plan's
"weights" (checkpoint files per model) where given, the same weights our side samples with.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts', 'fixtures'))
from checkpoint import read_safetensors  # noqa: E402
from classifier import Classifier  # noqa: E402
from unet import UNet  # noqa: E402


class Diffusion:
    """A model with its schedule: the coefficient tables come from our scheduler, so both sides sample the same chain."""

    def __init__(self, spec):
        self.spec = spec
        self.net = UNet(in_channels=spec["inChannels"]).to(DEVICE)
        s = spec["schedule"]
        self.sqrt_ab = torch.tensor(s["sqrtAlphasCumprod"], device=DEVICE)
        self.sqrt_1mab = torch.tensor(s["sqrtOneMinusAlphasCumprod"], device=DEVICE)
        self.s = s

    def load(self, checkpoint):
        tensors, _ = read_safetensors(checkpoint)
        self.net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(('ema.', 'optimizer.'))}, strict=True)

    def prepare(self, mode, n):
        """Eval mode; with "jit", the network traced at batch n, frozen and optimised for inference."""
        self.net.eval()
        if mode == "jit":
            size = self.spec["imageSize"]
            x = torch.randn(n, self.spec["inChannels"], size, size, device=DEVICE)
            ctx = self.context(torch.zeros(n, dtype=torch.long, device=DEVICE), torch.zeros(n, dtype=torch.long, device=DEVICE))
            with torch.no_grad():
                self.net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(self.net, (x, ctx))))

    def context(self, t, labels):
        return torch.cat([(t.float() / max(self.spec["numTimesteps"] - 1, 1)).unsqueeze(1), F.one_hot(labels, 10).float()], 1)

    def sample(self, labels, cond=None):
        n, size = labels.shape[0], self.spec["imageSize"]
        x = torch.randn(n, 1, size, size, device=DEVICE)
        s = self.s
        for t in reversed(range(self.spec["numTimesteps"])):
            inp = x if cond is None else torch.cat([x, cond], 1)
            eps = self.net(inp, self.context(torch.full((n,), t, dtype=torch.long, device=DEVICE), labels))
            x0 = (x - eps * s["sqrtOneMinusAlphasCumprod"][t]) / s["sqrtAlphasCumprod"][t]
            mean = x0 * s["posteriorMeanCoef1"][t] + x * s["posteriorMeanCoef2"][t]
            if t > 0:
                mean = mean + torch.randn_like(x) * s["posteriorVariance"][t] ** 0.5
            x = mean
        return x * self.spec["std"] + self.spec["mean"]

    def conditioning(self, low):
        up = F.interpolate(low, size=(self.spec["imageSize"],) * 2, mode="bilinear", align_corners=False)
        return (up - self.spec["mean"]) / self.spec["std"]


DEVICE = "cpu"


def sync():
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def repetition(fn, warmup, inner, per_second=None):
    """Warms fn up, then returns a function timing one repetition of `inner` calls: seconds per call, or
    per_second / that when given (a rate)."""
    for _ in range(warmup):
        fn()

    def rep():
        sync()
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        seconds = (time.perf_counter() - start) / inner
        return seconds if per_second is None else per_second / seconds

    return rep


def forward_in(mode, forward):
    """The network's forward, under bfloat16 autocast in mode "bf16"; float32 output for the loss."""
    if mode != "bf16":
        return forward()
    with torch.autocast(DEVICE.split(":")[0], dtype=torch.bfloat16):
        out = forward()
    return out.float()


def train_unet(plan, spec, mode):
    torch.manual_seed(0)
    model = Diffusion(spec)
    net = model.net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if mode == "compile":
        # PyTorch 2's CUDA-graph path for small-kernel-bound steps; the optimizer stays eager.
        net = torch.compile(net, mode="reduce-overhead")
    b, size = plan["batch"], spec["imageSize"]
    x0 = torch.randn(b, 1, size, size, device=DEVICE)
    labels = torch.randint(0, 10, (b,), device=DEVICE)
    cond = torch.randn(b, 1, size, size, device=DEVICE) if spec["inChannels"] == 2 else None

    def step():
        t = torch.randint(0, spec["numTimesteps"], (b,), device=DEVICE)
        noise = torch.randn_like(x0)
        xt = model.sqrt_ab[t].view(-1, 1, 1, 1) * x0 + model.sqrt_1mab[t].view(-1, 1, 1, 1) * noise
        inp = xt if cond is None else torch.cat([xt, cond], 1)
        loss = F.mse_loss(forward_in(mode, lambda: net(inp, model.context(t, labels))), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return repetition(step, plan["warmup"], plan["trainSteps"], b)


def train_classifier(plan, mode):
    torch.manual_seed(0)
    net = Classifier().to(DEVICE).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    b = plan["batch"]
    x = torch.randn(b, 1, 28, 28, device=DEVICE)
    y = torch.randint(0, 10, (b,), device=DEVICE)

    def step():
        loss = F.cross_entropy(forward_in(mode, lambda: net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return repetition(step, plan["warmup"], plan["classifierSteps"], b)


def prepare(plan, name, mode):
    """The one-repetition function of a workload."""
    specs = plan["models"]
    weights = plan.get("weights", {})
    if name.startswith("train-") and name != "train-classifier":
        return train_unet(plan, specs[name[len("train-"):]], mode)
    if name == "train-classifier":
        return train_classifier(plan, mode)
    if name == "sample-batched":
        torch.manual_seed(0)
        model = Diffusion(specs["baseline"])
        if "baseline" in weights:
            model.load(weights["baseline"])
        model.prepare(mode, plan["sampleBatch"])
        labels = torch.arange(plan["sampleBatch"], device=DEVICE) % 10
        with torch.inference_mode():
            return repetition(lambda: model.sample(labels), 1, 1, plan["sampleBatch"] * specs["baseline"]["numTimesteps"])
    pipeline = name[len("latency-"):]
    torch.manual_seed(0)
    nets = {k: Diffusion(specs[k]) for k in ("small", "upscaler", "baseline")}
    for k, m in nets.items():
        if k in weights:
            m.load(weights[k])
        m.prepare(mode, 1)
    small, upscaler, baseline = nets["small"], nets["upscaler"], nets["baseline"]
    counter = [0]

    def one():
        label = torch.tensor([counter[0] % 10], device=DEVICE)
        counter[0] += 1
        if pipeline == "baseline":
            return baseline.sample(label).clamp_(0, 1)
        low = small.sample(label).clamp_(0, 1)
        if pipeline == "small-upscaled":
            return F.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1)
        return upscaler.sample(label, upscaler.conditioning(low)).clamp_(0, 1)

    with torch.inference_mode():
        return repetition(one, plan["latencyWarmup"], plan["latencySamples"])


def main():
    global DEVICE
    plan = json.loads(sys.argv[1])
    DEVICE = plan["device"]
    prepared = {}
    for line in sys.stdin:
        request = json.loads(line)
        name = request.get("workload", request.get("release"))
        key = (name, request.get("mode", "eager"))
        if "release" in request:
            prepared.pop(key, None)
            reply = {"ok": True}
        else:
            torch.set_num_threads(plan["latencyThreads"] if name.startswith("latency") else plan["threads"])
            if key not in prepared:
                prepared[key] = prepare(plan, name, key[1])
            with torch.inference_mode(name.startswith(("latency", "sample"))):
                reply = {"value": prepared[key](), "torch": torch.__version__}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
