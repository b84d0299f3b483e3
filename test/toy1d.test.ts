// The 1-D study (§1.3): a short run learns both modes where the untrained network does not, on {−1, 1} and on the
// shifted {0, 2}; clipping keeps endpoints in the support's interval; the forward process's marginals; endpoint
// analysis, figures, the whole study's report, determinism, leaks.
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
  toy1dModel,
  trainToy1d,
  validateToy1dConfig,
  type EndpointAnalysis,
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

/** Endpoints outside [min, max] of the support. */
const outside = (endpoints: ArrayLike<number>, support: readonly [number, number], margin = 0): number =>
  Array.from(endpoints).filter((x) => x < Math.min(...support) - margin || x > Math.max(...support) + margin).length;

describe('a short run on {−1, 1}', () => {
  let model: Sequential;
  let finalLoss: number;
  before(() => {
    ({ model, finalLoss } = trainToy1d(SHORT));
  });
  after(() => model.dispose());

  test('learns both modes: most endpoints on the support, balanced shares; the same network before training lands almost nowhere near it', () => {
    assert.ok(Number.isFinite(finalLoss) && finalLoss < 0.5, `final loss ${finalLoss}`);
    const { endpoints, trajectories } = sampleToy1d(model, SHORT, SHORT.samples, { generator: new Generator(11) });
    assert.equal(endpoints.length, SHORT.samples);
    const { offSupport, shareNear } = analyseEndpoints(endpoints, SHORT.support, SHORT.tolerance);
    assert.ok(offSupport <= 0.1 * SHORT.samples, `${offSupport} of ${SHORT.samples} endpoints off the support`);
    for (const share of shareNear) assert.ok(share >= 0.3 && share <= 0.7, `shares ${shareNear.join(', ')}`);
    assert.ok(Math.abs(shareNear[0] + shareNear[1] - 1) < 1e-12);
    // Both modes are reached, each by endpoints within the tolerance.
    for (const point of SHORT.support) {
      const near = Array.from(endpoints).filter((x) => Math.abs(x - point) <= SHORT.tolerance).length;
      assert.ok(near >= 0.3 * SHORT.samples, `${near} endpoints within ${SHORT.tolerance} of ${point}`);
    }
    // The weights trainToy1d starts from (same seed, same generator order), sampled from the same noise.
    const untrained = toy1dModel(new Generator(SHORT.seed));
    try {
      const initial = analyseEndpoints(sampleToy1d(untrained, SHORT, SHORT.samples, { generator: new Generator(11) }).endpoints, SHORT.support, SHORT.tolerance);
      assert.ok(initial.offSupport >= 0.5 * SHORT.samples, `untrained: only ${initial.offSupport} of ${SHORT.samples} endpoints off the support`);
      assert.ok(initial.offSupport >= 5 * Math.max(offSupport, 1), `untrained ${initial.offSupport} vs trained ${offSupport} off the support`);
    } finally {
      untrained.dispose();
    }

    // Reverse trajectories: T + 1 values from x_T ~ N(0, 1) down to the endpoint.
    assert.equal(trajectories.direction, 'reverse');
    assert.equal(trajectories.count, SHORT.samples);
    const T = SHORT.schedule.numTimesteps;
    assert.equal(trajectories.length, T + 1);
    assert.equal(trajectories.values.length, SHORT.samples * (T + 1));
    assert.deepEqual(trajectories.steps, Array.from({ length: T + 1 }, (_, k) => T - k));
    for (let i = 0; i < SHORT.samples; i++) assert.equal(trajectories.values[i * trajectories.length + trajectories.length - 1], endpoints[i]);
    // They start from standard normal noise: the first column has mean ≈ 0 and variance ≈ 1.
    const starts = Array.from({ length: SHORT.samples }, (_, i) => trajectories.values[i * trajectories.length]!);
    const [m, v] = moments(starts);
    assert.ok(Math.abs(m) < 0.2 && Math.abs(v - 1) < 0.25, `x_T mean ${m}, variance ${v}`);
  });

  test('clip: true keeps every endpoint within [min, max] of the support, where the same model and noise unclipped overshoot', () => {
    for (const support of [[-1, 1], [2, 0]] as [number, number][]) {
      const config = { ...SHORT, support };
      const clipped = sampleToy1d(model, config, 300, { generator: new Generator(5), clip: true }).endpoints;
      const plain = sampleToy1d(model, config, 300, { generator: new Generator(5) }).endpoints;
      const [lo, hi] = [Math.min(...support), Math.max(...support)];
      for (const x of clipped) assert.ok(x >= lo && x <= hi, `endpoint ${x} outside [${lo}, ${hi}]`);
      // Clipping is what keeps them inside: unclipped, many endpoints lie past the interval, some well past it.
      assert.ok(outside(plain, support) >= 30, `${outside(plain, support)} of 300 unclipped endpoints outside [${lo}, ${hi}]`);
      assert.ok(outside(plain, support, 0.05) >= 3, `${outside(plain, support, 0.05)} of 300 unclipped endpoints more than 0.05 outside`);
    }
    // On the learnt support, clipping leaves the modes where they were.
    const clipped = sampleToy1d(model, SHORT, 300, { generator: new Generator(5), clip: true }).endpoints;
    const a = analyseEndpoints(clipped, SHORT.support, SHORT.tolerance);
    assert.ok(a.offSupport <= 30 && a.shareNear.every((s) => s >= 0.3), `clipped: ${a.offSupport} off, shares ${a.shareNear.join(', ')}`);
    // config.clip is the default when opts.clip is absent.
    const byConfig = sampleToy1d(model, { ...SHORT, clip: true }, 300, { generator: new Generator(5) }).endpoints;
    assert.deepEqual(byConfig, clipped);
    // The untrained network's endpoints fly far off; clipped, the same noise still ends inside [−1, 1].
    const untrained = toy1dModel(new Generator(1));
    try {
      const wild = sampleToy1d(untrained, SHORT, 100, { generator: new Generator(6) }).endpoints;
      const tamed = sampleToy1d(untrained, SHORT, 100, { generator: new Generator(6), clip: true }).endpoints;
      assert.ok(outside(wild, SHORT.support, 1) >= 50, `${outside(wild, SHORT.support, 1)} of 100 untrained endpoints beyond ±2`);
      assert.equal(outside(tamed, SHORT.support), 0);
    } finally {
      untrained.dispose();
    }
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

test('a short run on {0, 2} ends on {0, 2}: both shifted modes reached, endpoints centred on 1, not on {−1, 1}', () => {
  const config: Toy1dConfig = { ...SHORT, support: [0, 2] };
  const { model } = trainToy1d(config);
  try {
    const { endpoints } = sampleToy1d(model, config, SHORT.samples, { generator: new Generator(11) });
    const shifted = analyseEndpoints(endpoints, [0, 2], SHORT.tolerance);
    assert.ok(shifted.offSupport <= 0.1 * SHORT.samples, `${shifted.offSupport} of ${SHORT.samples} endpoints off {0, 2}`);
    for (const share of shifted.shareNear) assert.ok(share >= 0.25 && share <= 0.75, `shares ${shifted.shareNear.join(', ')}`);
    // Measured against the unshifted support, almost every endpoint is off it (0 and 2 are 1 away from ±1).
    const unshifted = analyseEndpoints(endpoints, [-1, 1], SHORT.tolerance);
    assert.ok(unshifted.offSupport >= 0.9 * SHORT.samples, `only ${unshifted.offSupport} endpoints off {−1, 1}`);
    const [mean] = moments(Array.from(endpoints));
    assert.ok(Math.abs(mean - 1) < 0.3, `endpoint mean ${mean}`);
  } finally {
    model.dispose();
  }
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

/** Mean and population variance. */
function moments(xs: readonly number[]): [number, number] {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return [mean, xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length];
}

/** Column k (state k) of row-major trajectories. */
const column = (tr: Toy1dTrajectories, k: number): number[] => Array.from({ length: tr.count }, (_, i) => tr.values[i * tr.length + k]!);

test('forward trajectories start on the support and end at N(0, 1) whatever the support; each state has the variance-preserving marginal', () => {
  for (const support of [[-1, 1], [0, 2], [3, 7]] as [number, number][]) {
    const fwd = forwardTrajectories({ ...TINY, support }, 2000, new Generator(4));
    const starts = column(fwd, 0);
    assert.ok(starts.every((x) => x === support[0] || x === support[1]), `${support}: a start off the support`);
    const upper = starts.filter((x) => x === support[1]).length / starts.length;
    assert.ok(upper > 0.45 && upper < 0.55, `${support}: share at ${support[1]}: ${upper}`);
    const [mean, variance] = moments(column(fwd, fwd.length - 1));
    assert.ok(Math.abs(mean) < 0.1 && Math.abs(variance - 1) < 0.1, `${support}: x_T mean ${mean}, variance ${variance}`);
  }
  // Data on {0, 4} (mean 2, variance 4): x_k = √ᾱ_k x_0 + √(1 − ᾱ_k) ε has mean 2√ᾱ_k and variance 4ᾱ_k + 1 − ᾱ_k, with
  // ᾱ_k = f(k)/f(0), f(t) = cos(((t/T + s)/(1 + s)) π/2)^1.5, s = 0.003 (the product of 1 − β telescopes), until β
  // reaches its cap 0.999 at the last step (f(T) = 0): ᾱ_T = 0.001 ᾱ_{T−1}.
  assert.deepEqual(TINY.schedule, { kind: 'cosine', numTimesteps: 20, power: 1.5 });
  const T = 20;
  const f = (t: number) => Math.cos(((t / T + 0.003) / 1.003) * (Math.PI / 2)) ** 1.5;
  const alphaBar = (k: number) => (k < T ? f(k) / f(0) : (0.001 * f(T - 1)) / f(0));
  const fwd = forwardTrajectories({ ...TINY, support: [0, 4] }, 4000, new Generator(8));
  assert.equal(fwd.direction, 'forward');
  assert.deepEqual(fwd.steps, Array.from({ length: T + 1 }, (_, k) => k));
  for (let k = 0; k <= T; k++) {
    const [mean, variance] = moments(column(fwd, k));
    const ab = alphaBar(k);
    const [m, v] = [2 * Math.sqrt(ab), 4 * ab + 1 - ab];
    assert.ok(Math.abs(mean - m) < 0.1, `state ${k}: mean ${mean}, expected ${m}`);
    assert.ok(Math.abs(variance - v) < 0.1 * v, `state ${k}: variance ${variance}, expected ${v}`);
  }
});

test('the forward figure highlights nothing; a hand-made off-support reverse trajectory is drawn thick and red', async () => {
  const fwd = forwardTrajectories({ ...TINY, support: [0, 2] }, 100, new Generator(4));
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

/** What runToy1d must report for `config`: the analysis of its reverse draw (generator seed + 2), plain or clipped. */
function expectedReport(config: Toy1dConfig): { finalLoss: number; reverse: EndpointAnalysis; clipped: EndpointAnalysis } {
  const { model, finalLoss } = trainToy1d(config);
  try {
    const draw = (clip: boolean) =>
      analyseEndpoints(sampleToy1d(model, config, config.samples, { generator: new Generator(config.seed + 2), clip }).endpoints, config.support, config.tolerance);
    return { finalLoss, reverse: draw(config.clip ?? false), clipped: draw(true) };
  } finally {
    model.dispose();
  }
}

test('runToy1d writes both figures and reports the analysis of its own reverse samples', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'toy1d-test-'));
  try {
    const before = memory().numTensors;
    const steps: number[] = [];
    const clippedConfig: Toy1dConfig = { ...TINY, support: [0, 2], clip: true };
    const result = await runToy1d(clippedConfig, dir, 'shifted', (step, total, loss) => {
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
    const clippedExpected = expectedReport(clippedConfig);
    assert.equal(result.finalLoss, clippedExpected.finalLoss);
    assert.equal(result.offSupport, clippedExpected.reverse.offSupport);
    assert.deepEqual(result.shareNear, clippedExpected.reverse.shareNear);
    assert.equal(result.clipped, undefined, 'a clipped study has no second, clipped row');
    // A plain study also samples the same noise with x̂0 clipped; on this barely trained model clipping matters.
    const plainConfig: Toy1dConfig = { ...TINY, support: [0, 2] };
    const plain = await runToy1d(plainConfig, dir, 'plain');
    const plainExpected = expectedReport(plainConfig);
    assert.equal(plain.offSupport, plainExpected.reverse.offSupport);
    assert.deepEqual(plain.shareNear, plainExpected.reverse.shareNear);
    assert.deepEqual(plain.clipped, plainExpected.clipped);
    assert.ok(plain.offSupport > plain.clipped!.offSupport, `off the support: ${plain.offSupport} plain, ${plain.clipped!.offSupport} clipped`);
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
    { schedule: { kind: 'cosine', numTimesteps: 1, power: 1.5 } },
    { schedule: { kind: 'cosine', numTimesteps: 2.5, power: 1.5 } },
    { schedule: { kind: 'cosine', numTimesteps: 20, power: 0 } },
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
