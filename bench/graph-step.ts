// Where a CUDA-graphed training step's time goes on a GPU (the baseline U-Net, batch 128): the trainer's step
// (batch drawn eagerly, forward and backward replayed, Adam eager, loss read back), the replay alone, Adam alone,
// the draw alone, and a step whose random draws are recorded in the graph too (default CUDA generator).
//   npm run bench:graph-step [-- --device cuda:N]
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.ts';
import { mseLoss } from '../src/nn/functional.ts';
import { Adam } from '../src/optim/index.ts';
import { DiffusionModel } from '../src/pipelines/diffusion-model.ts';
import { presetModel } from '../src/pipelines/model-config.ts';

const { values } = parseArgs({ options: { device: { type: 'string', default: 'cuda' } } });
const device = values.device!;
if (!device.startsWith('cuda') || !torch.cuda.isAvailable() || !torch.cudaGraphsAvailable()) {
  console.error(`graph-step: needs a GPU and an addon built with CUDA graphs (scripts/gpu-bench.sh builds one); --device ${device}`);
  process.exit(1);
}
const model = new DiffusionModel({ ...presetModel('baseline'), normalization: { mean: 0.1307, std: 0.3081 } }, device);
const scheduler = model.scheduler();
const optimizer = new Adam(model.unet.parameters(), { lr: 1e-3 });
const b = 128;
const x0 = torch.keep(torch.randn([b, 1, 28, 28], { device }));
const labels = torch.keep(torch.randint(0, 10, [b], { device }));
model.unet.train();
const g = new torch.GraphedFunction(([xt, t, noise]) => {
  const loss = mseLoss(model.predictNoise(xt!, t!, labels), noise!);
  loss.backward();
  return loss;
}, { device, warmup: 1, reset: () => optimizer.zeroGrad() });
const inputs = () => {
  const t = torch.randint(0, model.numTimesteps, [b], { device });
  const noise = torch.randn(x0.shape, { device });
  return [scheduler.addNoise(x0, noise, t), t, noise];
};
const step = () =>
  torch.tidy(() => {
    const l = g.call(inputs())[0]!;
    optimizer.step();
    return l.item();
  });
for (let i = 0; i < 5; i++) step();
const time = (name: string, n: number, fn: () => void) => {
  torch.cuda.synchronize();
  const s = performance.now();
  for (let i = 0; i < n; i++) fn();
  torch.cuda.synchronize();
  const ms = (performance.now() - s) / n;
  console.log(`${name}: ${ms.toFixed(3)} ms/step = ${(b / ms * 1000).toFixed(0)} samples/s`);
};
const fixed = torch.tidy(() => inputs().map((x) => torch.keep(x)));
// The draw inside the graph too (the default CUDA generator is registered with every capture).
const whole = new torch.GraphedFunction(() => {
  const [xt, t, noise] = inputs();
  const loss = mseLoss(model.predictNoise(xt!, t!, labels), noise!);
  loss.backward();
  return loss;
}, { device, warmup: 1, reset: () => optimizer.zeroGrad(), onFallback: (r) => console.log('whole-step capture failed:', r) });
const wholeStep = () =>
  torch.tidy(() => {
    const l = whole.call([])[0]!;
    optimizer.step();
    return l.item();
  });
for (let i = 0; i < 3; i++) wholeStep();
for (let r = 0; r < 2; r++) {
  time('whole step with the draw captured too (replay, Adam, loss read)', 100, wholeStep);
  time('same without reading the loss', 100, () =>
    torch.tidy(() => {
      whole.call([]);
      optimizer.step();
    }));
  time('full step (draw, replay, Adam, loss read)', 100, step);
  time('input copies and replay alone (no sync)', 100, () => torch.tidy(() => void g.call(fixed)));
  time('Adam step alone', 100, () => optimizer.step());
  time('draw alone', 100, () => torch.tidy(() => void inputs()));
}
