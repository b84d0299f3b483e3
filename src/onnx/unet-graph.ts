// The paper's U-Net (models/unet.ts) written as ONNX nodes, from its module tree and current weights, in the
// form a sampler wants: batch norm folded into a per-channel multiply-add, and the FiLM terms γ, β either
// computed in the graph from the context [t/(T−1), one-hot label (, level)] or — where the context is discrete —
// looked up in a table of every (t, label) computed here, once, by our own FiLM layers.
import type { BatchNorm2d, Conv2d, Linear } from '../nn/layers.ts';
import type { DoubleConv, FiLM, UNet } from '../models/unet.ts';
import { unetContext } from '../models/unet.ts';
import { noGrad } from '../torch/grad-mode.ts';
import { int64 } from '../torch/ops/creation.ts';
import { tidy } from '../torch/scope.ts';
import type { Tensor } from '../torch/tensor.ts';
import type { GraphBuilder } from './graph.ts';

/** γ and β of one encoder block, values of shape [N, C, 1, 1]. */
interface BlockModulation {
  gamma: string;
  beta: string;
}

function floats(t: Tensor): Float32Array {
  return tidy(() => t.detach().contiguous().to({ device: 'cpu' }).data() as Float32Array);
}

function weight(g: GraphBuilder, hint: string, t: Tensor): string {
  return g.constant(hint, floats(t), t.shape);
}

function conv(g: GraphBuilder, x: string, c: Conv2d, hint: string, outName = hint): string {
  const k = c.weight.shape;
  const inputs = [x, weight(g, `${hint}.weight`, c.weight)];
  if (c.bias !== null) inputs.push(weight(g, `${hint}.bias`, c.bias));
  const p = c.padding;
  return g.op('Conv', inputs, { kernel_shape: [k[2]!, k[3]!], pads: [p, p, p, p], strides: [c.stride, c.stride] }, outName);
}

/** GELU, exact: x · ½ (1 + erf(x / √2)), in the pattern ONNX Runtime fuses into one kernel. */
export function gelu(g: GraphBuilder, x: string): string {
  const e = g.op('Erf', [g.op('Div', [x, g.scalar(Math.SQRT2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.op('Add', [e, g.scalar(1)])]), g.scalar(0.5)], {}, 'gelu');
}

// Batch norm in evaluation mode folded to y = scale · x + shift, written as a BatchNormalization of mean 0 and
// variance 1: ONNX Runtime keeps that in its blocked convolution layout, where a Mul and an Add would not be.
function batchNorm(g: GraphBuilder, x: string, bn: BatchNorm2d, hint: string): string {
  const [scale, shift] = noGrad(() => bn.evalAffine());
  const C = bn.numFeatures;
  const out = g.op('BatchNormalization', [
    x,
    g.constant(`${hint}.scale`, floats(scale), [C]),
    g.constant(`${hint}.shift`, floats(shift), [C]),
    g.constant(`${hint}.zero`, new Float32Array(C), [C]),
    g.constant(`${hint}.one`, new Float32Array(C).fill(1), [C]),
  ], { epsilon: { float: 0 } }, hint);
  scale.dispose();
  shift.dispose();
  return out;
}

function doubleConv(g: GraphBuilder, x: string, d: DoubleConv, hint: string): string {
  const h = batchNorm(g, gelu(g, conv(g, x, d.conv1, `${hint}.conv1`)), d.bn1, `${hint}.bn1`);
  return batchNorm(g, gelu(g, conv(g, h, d.conv2, `${hint}.conv2`)), d.bn2, `${hint}.bn2`);
}

/** ε̂ for the network input x ([N, inChannels, H, W]) under per-block modulations, as the value `outName`. */
export function unetGraph(g: GraphBuilder, unet: UNet, x: string, modulation: readonly BlockModulation[], outName = 'eps'): string {
  const skips: string[] = [];
  let h = x;
  unet.encoders.forEach((e, i) => {
    if (e.pool) h = g.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] }, `enc${i}.pool`);
    const m = modulation[i]!;
    h = doubleConv(g, g.op('Add', [g.op('Mul', [h, m.gamma]), m.beta], {}, `enc${i}.film`), e.conv, `enc${i}.conv`);
    skips.push(h);
  });
  const depth = unet.config.depth;
  let d: string | undefined;
  for (let i = 0; i < depth; i++) {
    const level = depth - 1 - i;
    const input = d === undefined ? skips[level]! : g.op('Concat', [d, skips[level]!], { axis: 1 });
    d = doubleConv(g, input, unet.decoders[i]!.conv, `dec${i}.conv`);
    if (level > 0) d = resizeLike(g, d, skips[level - 1]!, `dec${i}.up`);
  }
  return conv(g, d!, unet.out, 'out', outName);
}

// The decoder's bilinear upsampling (aligned corners) to the size of the next skip, read from the skip's shape:
// the image side is fixed per model, but computing it here keeps the graph right for any input size.
function resizeLike(g: GraphBuilder, x: string, like: string, hint: string): string {
  const hw = g.op('Shape', [like], { start: 2, end: 4 });
  return g.op('Resize', [x, '', '', hw], { mode: 'linear', coordinate_transformation_mode: 'align_corners', axes: [2, 3] }, hint);
}

function linear(g: GraphBuilder, x: string, l: Linear, hint: string): string {
  const inputs = [x, weight(g, `${hint}.weight`, l.weight)];
  if (l.bias !== null) inputs.push(weight(g, `${hint}.bias`, l.bias));
  return g.op('Gemm', inputs, { transB: 1 }, hint);
}

/** FiLM's MLP in the graph: γ, β of every block for a context value [N, contextSize]. */
export function filmFromContext(g: GraphBuilder, films: readonly FiLM[], context: string): BlockModulation[] {
  return films.map((film, i) => {
    const gb = linear(g, gelu(g, linear(g, context, film.fc1, `enc${i}.film.fc1`)), film.fc2, `enc${i}.film.fc2`);
    const c = film.channels;
    const shape = g.constant('film_shape', BigInt64Array.of(-1n, BigInt(c), 1n, 1n), [4]);
    const [gamma, beta] = g.opN('Split', [gb, g.constant('film_split', BigInt64Array.of(BigInt(c), BigInt(c)), [2])], 2, { axis: 1 }, `enc${i}.film.gb`);
    return { gamma: g.op('Reshape', [gamma!, shape], {}, `enc${i}.gamma`), beta: g.op('Reshape', [beta!, shape], {}, `enc${i}.beta`) };
  });
}

/** The context [t/(T−1), one-hot(label)(, level)] in the graph, as unetContext builds it. */
export function contextGraph(g: GraphBuilder, t: string, label: string, numTimesteps: number, numClasses: number, level?: string): string {
  const time = g.op('Unsqueeze', [g.op('Div', [g.op('Cast', [t], { to: 1 }), g.scalar(Math.max(numTimesteps - 1, 1))]), g.constant('axis1', BigInt64Array.of(1n), [1])]);
  const hot = g.op('OneHot', [label, g.constant('num_classes', BigInt64Array.of(BigInt(numClasses)), []), g.constant('off_on', Float32Array.of(0, 1), [2])], { axis: -1 });
  const parts = [time, hot];
  if (level !== undefined) parts.push(g.op('Unsqueeze', [level, g.constant('axis1', BigInt64Array.of(1n), [1])]));
  return g.op('Concat', parts, { axis: 1 }, 'context');
}

/**
 * γ, β of every block looked up by (t, label) in tables computed now by the U-Net's own FiLM layers, for
 * models whose context has no continuous part: one Gather per term instead of an MLP per block per step.
 */
export function filmFromTable(g: GraphBuilder, unet: UNet, numTimesteps: number, t: string, label: string, opts: { nullLabel?: boolean } = {}): BlockModulation[] {
  const K = unet.config.numClasses;
  // Labels 0..K−1, and K, the null label of classifier-free guidance, where the model knows it.
  const labels = opts.nullLabel ? K + 1 : K;
  const rows = numTimesteps * labels;
  const index = g.op('Add', [g.op('Mul', [t, g.constant('num_labels', BigInt64Array.of(BigInt(labels)), [])]), label], {}, 'film_row');
  return noGrad(() => tidy(() => {
    const ts = int64(Array.from({ length: rows }, (_, r) => Math.floor(r / labels)));
    const ys = int64(Array.from({ length: rows }, (_, r) => r % labels));
    const context = unetContext(ts, numTimesteps, ys, K);
    return unet.encoders.map((e, i) => {
      const { gamma, beta } = e.film.modulation(context);
      return {
        gamma: g.op('Gather', [weight(g, `enc${i}.gamma_table`, gamma), index], { axis: 0 }, `enc${i}.gamma`),
        beta: g.op('Gather', [weight(g, `enc${i}.beta_table`, beta), index], { axis: 0 }, `enc${i}.beta`),
      };
    });
  }));
}
