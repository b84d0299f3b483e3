// Training throughput of the paper's U-Net (batch 128, 28×28, Adam, ε-prediction MSE) through our API,
// beside the identical PyTorch-eager step from /usr/bin/python3 when it has torch. The last line is
// `ratio: <ours / PyTorch>`.
//   npm run bench:engine -- [--steps 5] [--reps 5] [--warmup 3] [--batch 128]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { UNet, PAPER_UNET, unetContext } from '../src/models/unet.ts';
import { Adam } from '../src/optim/index.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '5' },
    reps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    batch: { type: 'string', default: '128' },
  },
});
const steps = Number(values.steps);
const reps = Number(values.reps);
const warmup = Number(values.warmup);
const batch = Number(values.batch);
const size = 28;
const states = 30;
const threads = torch.getNumThreads();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function ours(): number[] {
  torch.manualSeed(0);
  const model = new UNet(PAPER_UNET).train();
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const x0 = torch.keep(torch.randn([batch, 1, size, size]));
  const labels = torch.keep(torch.randint(0, 10, [batch]));
  const abar = torch.keep(torch.linspace(0.999, 0.01, states));
  const step = () =>
    torch.tidy(() => {
      const t = torch.randint(0, states, [batch]);
      const noise = torch.randn(x0.shape);
      const ab = torch.indexSelect(abar, 0, t).view([-1, 1, 1, 1]);
      const xt = ab.sqrt().mul(x0).add_(torch.rsub(ab, 1).sqrt().mul(noise));
      const loss = mseLoss(model.forward(xt, unetContext(t, states, labels, 10)), noise);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      return loss.item();
    });
  for (let i = 0; i < warmup; i++) step();
  const rates: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    for (let i = 0; i < steps; i++) step();
    rates.push((batch * steps) / ((performance.now() - start) / 1000));
  }
  torch.dispose([x0, labels, abar]);
  optimizer.dispose();
  model.dispose();
  return rates;
}

function peer(): { rates: number[]; version: string } | string {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return 'PyTorch peer skipped: /usr/bin/python3 not found (apt-get install python3-torch)';
  try {
    execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return 'PyTorch peer skipped: /usr/bin/python3 has no torch (apt-get install python3-torch)';
  }
  const script = fileURLToPath(new URL('./peer/engine_peer.py', import.meta.url));
  const args = [script, `--steps=${steps}`, `--reps=${reps}`, `--warmup=${warmup}`, `--batch=${batch}`, `--threads=${threads}`, `--states=${states}`];
  const run = spawnSync(python, args, { encoding: 'utf8' });
  if (run.status !== 0) return `PyTorch peer failed: ${run.stderr.trim().split('\n').pop()}`;
  const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as { samples_per_s: number[]; torch: string };
  return { rates: out.samples_per_s, version: out.torch };
}

console.log(`U-Net training, batch ${batch}, ${size}×${size}, Adam; libtorch ${torch.torchVersion}, ${threads} threads; median of ${reps}×${steps} steps after ${warmup} warm-up`);
const ourRates = ours();
console.log(`ours (TypeScript):   ${median(ourRates).toFixed(1)} samples/s  [${ourRates.map((r) => r.toFixed(0)).join(' ')}]`);
const theirs = peer();
if (typeof theirs === 'string') {
  console.log(theirs);
} else {
  console.log(`PyTorch ${theirs.version} eager: ${median(theirs.rates).toFixed(1)} samples/s  [${theirs.rates.map((r) => r.toFixed(0)).join(' ')}]`);
  console.log(`ratio: ${(median(ourRates) / median(theirs.rates)).toFixed(2)}`);
}
