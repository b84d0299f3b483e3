// The 1-D study (§1.3): a short run learns both modes, endpoint analysis, figures, clipping, determinism, leaks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PAPER_TOY1D,
  analyseEndpoints,
  forwardTrajectories,
  runToy1d,
  sampleToy1d,
  toy1dFigure,
  trainToy1d,
  validateToy1dConfig,
  type Toy1dConfig,
  type Toy1dTrajectories,
} from '../src/experiments/toy1d.ts';
import type { Sequential } from '../src/nn/layers.ts';
import { Generator } from '../src/torch/generator.ts';
import { memory } from '../src/torch/scope.ts';
import { withNoLeaks } from './helpers.ts';

// The paper's lr 1e-4 needs 20 000 steps; 1 000 steps at 3e-3 learn the two modes (checked over 6 seeds:
// ≤ 5 of 400 endpoints off the support, shares within [0.39, 0.61]).
const SHORT: Toy1dConfig = { ...PAPER_TOY1D, epochs: 20, batchesPerEpoch: 50, lr: 3e-3, seed: 0, samples: 400 };
const TINY: Toy1dConfig = { ...PAPER_TOY1D, epochs: 2, batchesPerEpoch: 10, lr: 3e-3, seed: 3, samples: 50 };

describe('a short run on {−1, 1}', () => {
  let model: Sequential;
  let finalLoss: number;
  before(() => {
    ({ model, finalLoss } = trainToy1d(SHORT));
  });
  after(() => model.dispose());

  test('learns both modes: most endpoints on the support, balanced shares', () => {
    assert.ok(Number.isFinite(finalLoss) && finalLoss < 0.5, `final loss ${finalLoss}`);
    const { endpoints, trajectories } = sampleToy1d(model, SHORT, SHORT.samples, { generator: new Generator(11) });
    assert.equal(endpoints.length, SHORT.samples);
    const { offSupport, shareNear } = analyseEndpoints(endpoints, SHORT.support, SHORT.tolerance);
    assert.ok(offSupport <= 0.1 * SHORT.samples, `${offSupport} of ${SHORT.samples} endpoints off the support`);
    for (const share of shareNear) assert.ok(share >= 0.3 && share <= 0.7, `shares ${shareNear.join(', ')}`);
    assert.ok(Math.abs(shareNear[0] + shareNear[1] - 1) < 1e-12);

    // Reverse trajectories: T + 1 values from x_T ~ N(0, 1) down to the endpoint.
    assert.equal(trajectories.direction, 'reverse');
    assert.equal(trajectories.count, SHORT.samples);
    assert.equal(trajectories.length, SHORT.numStates + 1);
    assert.equal(trajectories.values.length, SHORT.samples * (SHORT.numStates + 1));
    assert.deepEqual(trajectories.steps, Array.from({ length: SHORT.numStates + 1 }, (_, k) => SHORT.numStates - k));
    for (let i = 0; i < SHORT.samples; i++) assert.equal(trajectories.values[i * trajectories.length + trajectories.length - 1], endpoints[i]);
  });

  test('clip: true keeps every endpoint within [min, max] of the support', () => {
    for (const support of [[-1, 1], [2, 0]] as [number, number][]) {
      const { endpoints } = sampleToy1d(model, { ...SHORT, support }, 300, { generator: new Generator(5), clip: true });
      const [lo, hi] = [Math.min(...support), Math.max(...support)];
      for (const x of endpoints) assert.ok(x >= lo && x <= hi, `endpoint ${x} outside [${lo}, ${hi}]`);
    }
    // config.clip is the default when opts.clip is absent.
    const { endpoints } = sampleToy1d(model, { ...SHORT, clip: true }, 100, { generator: new Generator(6) });
    for (const x of endpoints) assert.ok(x >= -1 && x <= 1);
  });

  test('sampling is deterministic for a seeded generator', () => {
    const a = sampleToy1d(model, SHORT, 50, { generator: new Generator(9) });
    const b = sampleToy1d(model, SHORT, 50, { generator: new Generator(9) });
    const c = sampleToy1d(model, SHORT, 50, { generator: new Generator(10) });
    assert.deepEqual(a.trajectories.values, b.trajectories.values);
    assert.notDeepEqual(a.endpoints, c.endpoints);
  });

  test('the reverse figure is a well-formed SVG', async () => {
    const { trajectories } = sampleToy1d(model, SHORT, 150, { generator: new Generator(12) });
    const svg = await toy1dFigure(trajectories, { title: 'Reverse process on {-1, 1}', support: SHORT.support });
    assert.ok(svg.startsWith('<svg'), svg.slice(0, 40));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.ok(svg.includes('<path'), 'no paths');
    assert.ok(svg.includes('Reverse process on {-1, 1}'));
  });
});

test('analyseEndpoints counts off-support endpoints and nearest-mode shares', () => {
  // Off: 0.5, -0.3 and 1.3 (0.3 from 1); on: -1, 0.9, -1.2, 1.24, -0.76. Nearer -1: -1, -0.3, -1.2, -0.76.
  const r = analyseEndpoints([-1, 0.9, 0.5, -0.3, 1.3, -1.2, 1.24, -0.76], [-1, 1], 0.25);
  assert.equal(r.offSupport, 3);
  assert.deepEqual(r.shareNear, [4 / 8, 4 / 8]);
  // Shifted support, order as given; a tie goes to the first point; non-finite values are off and near neither.
  const s = analyseEndpoints(Float32Array.from([2, 0, 1, 0.1, Number.NaN]), [2, 0], 0.25);
  assert.equal(s.offSupport, 2);
  assert.deepEqual(s.shareNear, [2 / 5, 2 / 5]);
  assert.throws(() => analyseEndpoints([], [-1, 1], 0.25), RangeError);
});

test('forward trajectories start on the support and end near N(0, 1); the figure highlights off-support lines', async () => {
  const fwd = forwardTrajectories({ ...TINY, support: [0, 2] }, 500, new Generator(4));
  assert.equal(fwd.direction, 'forward');
  assert.deepEqual(fwd.steps, Array.from({ length: TINY.numStates + 1 }, (_, k) => k));
  const starts = Array.from({ length: fwd.count }, (_, i) => fwd.values[i * fwd.length]!);
  assert.ok(starts.every((x) => x === 0 || x === 2));
  const nearTwo = starts.filter((x) => x === 2).length / starts.length;
  assert.ok(nearTwo > 0.4 && nearTwo < 0.6, `share at 2: ${nearTwo}`);
  const ends = Array.from({ length: fwd.count }, (_, i) => fwd.values[i * fwd.length + fwd.length - 1]!);
  const mean = ends.reduce((a, b) => a + b, 0) / ends.length;
  const variance = ends.reduce((a, b) => a + (b - mean) ** 2, 0) / ends.length;
  assert.ok(Math.abs(mean) < 0.15 && Math.abs(variance - 1) < 0.2, `x_T mean ${mean}, variance ${variance}`);
  const svg = await toy1dFigure(fwd, { title: 'Forward', support: [0, 2], maxLines: 30 });
  assert.ok(svg.startsWith('<svg') && svg.includes('<path'));
  // The legend names all three colours; only lines of off-support trajectories are thick and red.
  const offLine = 'stroke="#d62728" stroke-width="2.2"';
  assert.ok(!svg.includes(offLine), 'forward trajectories start on the support: nothing to highlight');

  const handMade: Toy1dTrajectories = { direction: 'reverse', count: 3, length: 3, steps: [2, 1, 0], values: Float32Array.from([0.3, -0.5, -1, 1.2, 0.8, 1, -0.4, 0.1, 0.05]) };
  const highlighted = await toy1dFigure(handMade, { title: 'Hand-made', support: [-1, 1] });
  assert.equal(highlighted.split(offLine).length - 1, 1, 'the off-support trajectory is drawn thick and red');
});

test('training is deterministic for a seed', () => {
  const run = (seed: number) => {
    const { model, finalLoss } = trainToy1d({ ...TINY, seed });
    try {
      return { finalLoss, endpoints: sampleToy1d(model, TINY, 20, { generator: new Generator(1) }).endpoints };
    } finally {
      model.dispose();
    }
  };
  const a = run(3);
  assert.deepEqual(run(3), a);
  assert.notEqual(run(4).finalLoss, a.finalLoss);
});

test('training, sampling and forward trajectories release every tensor', () => {
  const all = () => {
    const { model } = trainToy1d(TINY);
    sampleToy1d(model, TINY, 10, { generator: new Generator(2), clip: true });
    sampleToy1d(model, TINY, 10, { generator: new Generator(2) });
    forwardTrajectories(TINY, 10, new Generator(2));
    model.dispose();
  };
  withNoLeaks(all);
  // Outside any tidy scope too, where a tensor left to an enclosing scope would stay alive.
  const before = memory().numTensors;
  all();
  assert.equal(memory().numTensors, before);
});

test('runToy1d writes both figures and reports the analysis', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'toy1d-test-'));
  try {
    const before = memory().numTensors;
    const steps: number[] = [];
    const result = await runToy1d({ ...TINY, support: [0, 2], clip: true }, dir, 'shifted', (step, total, loss) => {
      assert.equal(total, TINY.epochs * TINY.batchesPerEpoch);
      assert.ok(Number.isFinite(loss));
      steps.push(step);
    });
    assert.equal(memory().numTensors, before);
    assert.deepEqual(steps, Array.from({ length: TINY.epochs * TINY.batchesPerEpoch }, (_, i) => i + 1));
    assert.equal(result.forwardFigure, 'shifted-forward.svg');
    assert.equal(result.reverseFigure, 'shifted-reverse.svg');
    for (const f of [result.forwardFigure, result.reverseFigure]) assert.ok(readFileSync(join(dir, f), 'utf8').startsWith('<svg'));
    assert.ok(!existsSync(join(dir, 'shifted.svg')));
    assert.deepEqual(result.support, [0, 2]);
    assert.equal(result.samples, TINY.samples);
    assert.equal(result.tolerance, TINY.tolerance);
    assert.ok(result.offSupport >= 0 && result.offSupport <= TINY.samples);
    assert.ok(Math.abs(result.shareNear[0] + result.shareNear[1] - 1) < 1e-12);
    assert.ok(Number.isFinite(result.finalLoss));
    assert.equal(result.clipped, undefined, 'a clipped study has no second, clipped row');
    // A plain study also samples the same noise with x̂0 clipped.
    const plain = await runToy1d({ ...TINY, support: [0, 2] }, dir, 'plain');
    assert.ok(plain.clipped !== undefined && plain.clipped.offSupport >= 0 && plain.clipped.offSupport <= TINY.samples);
    assert.ok(Math.abs(plain.clipped.shareNear[0] + plain.clipped.shareNear[1] - 1) < 1e-12);
    await assert.rejects(runToy1d(TINY, dir, 'a/b'), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('invalid configurations are rejected', () => {
  validateToy1dConfig(PAPER_TOY1D);
  const bad: Partial<Toy1dConfig>[] = [
    { support: [1, 1] },
    { support: [0, Number.NaN] },
    { numStates: 1 },
    { numStates: 2.5 },
    { cosinePower: 0 },
    { epochs: 0 },
    { batchesPerEpoch: -1 },
    { batchSize: 0 },
    { lr: 0 },
    { seed: -1 },
    { samples: 0 },
    { tolerance: 0 },
  ];
  for (const b of bad) assert.throws(() => validateToy1dConfig({ ...PAPER_TOY1D, ...b }), RangeError, JSON.stringify(b));
  assert.throws(() => trainToy1d({ ...PAPER_TOY1D, epochs: 0 }), RangeError);
});
