// Soak test: a long training of the small 14×14 U-Net (T = 20) on a few hundred real MNIST images, batch 32,
// Adam, the trainer's own step (ε-prediction MSE); the process's resident memory and the live native tensors
// are sampled every 100 steps. The last lines are
//   native_tensors: first=<n> last=<n>
//   rss_mb: first=<n> max=<n> last=<n>
// with `first` taken after a warm-up; the exit status is 1 when the last RSS is more than 10 % off the first
// (or the live tensors grew).
//   npm run soak -- [--steps 10000] [--warmup 500] [--every 100] [--per-class 30] [--batch 32]
import { parseArgs } from 'node:util';
import { loadMnist } from '../src/data/datasets.ts';
import { balancedSubset, batches } from '../src/data/sampling.ts';
import { downscale } from '../src/data/tensor-dataset.ts';
import { DDPMScheduler } from '../src/diffusion/ddpm.ts';
import { NoiseSchedule } from '../src/diffusion/schedule.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel } from '../src/pipelines/model-config.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { Adam } from '../src/optim/index.ts';
import * as torch from '../src/torch/index.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '500' },
    every: { type: 'string', default: '100' },
    'per-class': { type: 'string', default: '30' },
    batch: { type: 'string', default: '32' },
  },
});
const positive = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`soak: --${name} must be a positive integer, got '${v}'`);
    process.exit(2);
  }
  return n;
};
const steps = positive('steps', values.steps);
const every = positive('every', values.every);
const perClass = positive('per-class', values['per-class']);
const batchSize = positive('batch', values.batch);
const warmup = Math.min(positive('warmup', values.warmup), steps);
const seed = 1;

const mb = (bytes: number) => bytes / 2 ** 20;
const rssMb = () => mb(process.memoryUsage().rss);

// Data: a balanced subset of real MNIST at 14×14 in model space, held once in libtorch memory.
const subset = balancedSubset(loadMnist('train'), perClass, 0);
const preset = presetModel('small');
const pixels = torch.keep(
  torch.tidy(() => downscale(torch.tensor(subset.images, { shape: [subset.count, 1, 28, 28] }).float().div_(255), preset.imageSize)),
);
const mean = torch.tidy(() => pixels.mean().item());
const std = torch.tidy(() => pixels.sub(mean).square().mean().sqrt().item());
torch.manualSeed(seed);
const model = new DiffusionModel({ ...preset, normalization: { mean, std } });
const data = torch.keep(model.toModelSpace(pixels));
pixels.dispose();
const labels = torch.keep(torch.tensor(BigInt64Array.from(subset.labels, (l) => BigInt(l))));
const scheduler = new DDPMScheduler({ schedule: new NoiseSchedule(preset.schedule) });
const optimizer = new Adam(model.unet.parameters(), { lr: 1e-3 });
const generator = new torch.Generator(seed);
model.unet.train();

console.log(
  `soak: small U-Net ${preset.imageSize}×${preset.imageSize}, T=${preset.schedule.numTimesteps}, ${subset.count} MNIST images, batch ${batchSize}, Adam; ` +
    `${steps} steps, memory every ${every}, warm-up ${warmup}; libtorch ${torch.torchVersion}, ${torch.getNumThreads()} thread(s)`,
);

const started = performance.now();
let step = 0;
let epoch = 0;
let lastLoss = Number.NaN;
let rssFirst: number | undefined;
let rssMax = 0;
let rssLast = rssMb();
let tensorsFirst: number | undefined;
let tensorsLast = torch.memory().numTensors;

while (step < steps) {
  for (const idx of batches(subset.count, batchSize, { seed: seed * 1_000_003 + epoch })) {
    if (step >= steps) break;
    lastLoss = torch.tidy(() => {
      const index = torch.tensor(BigInt64Array.from(idx, (i) => BigInt(i)));
      const x0 = torch.indexSelect(data, 0, index);
      const y = torch.indexSelect(labels, 0, index);
      const t = torch.randint(0, preset.schedule.numTimesteps, [idx.length], { generator });
      const noise = torch.randn(x0.shape, { generator });
      const eps = model.predictNoise(scheduler.addNoise(x0, noise, t), t, y);
      const l = mseLoss(eps, noise);
      optimizer.zeroGrad();
      l.backward();
      return l.item();
    });
    torch.noGrad(() => torch.tidy(() => optimizer.step()));
    step++;
    if (!Number.isFinite(lastLoss)) {
      console.error(`soak: the loss became ${lastLoss} at step ${step}`);
      process.exit(1);
    }
    if (step % every === 0 || step === steps) {
      rssLast = rssMb();
      tensorsLast = torch.memory().numTensors;
      if (step >= warmup) {
        rssFirst ??= rssLast;
        tensorsFirst ??= tensorsLast;
        rssMax = Math.max(rssMax, rssLast);
      }
      if (step % (10 * every) === 0 || step === steps || step === warmup) {
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `step ${step}/${steps}  loss ${lastLoss.toFixed(4)}  rss ${rssLast.toFixed(1)} MB  native tensors ${tensorsLast}  ` +
            `${seconds.toFixed(0)} s (${((1000 * seconds) / step).toFixed(1)} ms/step)`,
        );
      }
    }
  }
  epoch++;
}

torch.dispose([data, labels]);
optimizer.dispose();
scheduler.dispose();
model.dispose();

const first = rssFirst ?? rssLast;
const drift = (rssLast - first) / first;
const seconds = (performance.now() - started) / 1000;
console.log(`wall: ${seconds.toFixed(1)} s for ${steps} steps (${((1000 * seconds) / steps).toFixed(1)} ms/step); rss drift ${(100 * drift).toFixed(1)} %`);
console.log(`native_tensors: first=${tensorsFirst ?? tensorsLast} last=${tensorsLast}`);
console.log(`rss_mb: first=${first.toFixed(1)} max=${Math.max(rssMax, rssLast).toFixed(1)} last=${rssLast.toFixed(1)}`);
if (Math.abs(drift) > 0.1 || tensorsLast > (tensorsFirst ?? tensorsLast)) process.exitCode = 1;
