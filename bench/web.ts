/// <reference lib="dom" />
// The page's two targets, measured in headless Chromium (Debian's, through playwright-core) on this machine:
//   1. the first sample visible after the page starts loading: in a fresh browser profile (nothing cached), and
//      reloaded (the files revalidated by ETag: 304s, the models come from the HTTP cache);
//   2. one 30-step baseline sample (DDPM, batch 1) in the page, beside the same sample on Node's ONNX Runtime
//      engine (as `ssddpm speed --run pretrained/mnist/baseline-1` measures it), in the same run.
// The last line is `summary: first_sample_ms=<cold> first_sample_cached_ms=<cached> page_ms=<ms> node_ms=<ms> ratio=<page/node>`.
//   npm run bench:web -- [--samples 100] [--node-samples 200] [--loads 3] [--threads N] [--site DIR]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { measureSamplingSpeed } from '../src/eval/speed.ts';
import { disposePipeline, loadPipeline } from '../src/pipelines/pipeline.ts';
import { getNumThreads, setNumThreads } from '../src/torch/runtime.ts';
import { DEFAULT_RUNS, buildSite } from '../src/web/site.ts';
import { serveSite } from '../src/web/serve.ts';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '100' },
    'node-samples': { type: 'string', default: '200' },
    loads: { type: 'string', default: '3' },
    site: { type: 'string' },
    /** The page's WebAssembly threads (default: the page's own choice). */
    threads: { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
  },
});
const count = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, got '${v}'`);
  return n;
};
const samples = count('samples', values.samples);
const nodeSamples = count('node-samples', values['node-samples']);
const loads = count('loads', values.loads);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => ms.toFixed(1);

function nodeMsPerSample(threads: number): number {
  const before = getNumThreads();
  setNumThreads(threads);
  const p = loadPipeline({ runs: [DEFAULT_RUNS.baseline], engine: 'onnxruntime' });
  try {
    return measureSamplingSpeed(p, { samples: nodeSamples }).secondsPerSample * 1000;
  } finally {
    disposePipeline(p);
    setNumThreads(before);
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'ssddpm-bench-web-'));
try {
  const siteDir = values.site ?? join(tmp, 'site');
  if (values.site === undefined) await buildSite(siteDir);
  const server = await serveSite(siteDir, { port: 0 });
  const browser = await chromium.launch({ executablePath: values.chromium, args: ['--no-sandbox'] });
  try {
    type Hook = { ssddpmTest: { firstSampleMs?: number; ready: Promise<unknown>; sample(r: unknown): Promise<{ ms: number; engineMs: number }> } };
    // 1. The first sample: each load in a fresh profile, then reloaded with the HTTP cache warm.
    const cold: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < loads; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      for (const into of [cold, cached]) {
        if (into === cold) await page.goto(server.url);
        else await page.reload();
        await page.waitForFunction(() => (window as unknown as Hook).ssddpmTest?.firstSampleMs !== undefined, null, { timeout: 60_000 });
        into.push(await page.evaluate(() => (window as unknown as Hook).ssddpmTest.firstSampleMs!));
      }
      await context.close();
    }
    console.log(`first sample visible, nothing cached: ${cold.map(fmt).join(', ')} ms (median ${fmt(median(cold))})`);
    console.log(`first sample visible, reloaded (models from the HTTP cache): ${cached.map(fmt).join(', ')} ms (median ${fmt(median(cached))})`);

    // 2. One baseline sample in the page (DDPM, 30 steps, batch 1, plain sampling as `ssddpm speed`).
    const page = await browser.newPage();
    await page.goto(`${server.url}?autostart=0${values.threads === undefined ? '' : `&threads=${count('threads', values.threads)}`}`);
    const backend = await page.evaluate(() => (window as unknown as Hook).ssddpmTest.ready);
    const times: number[] = [];
    const engine: number[] = [];
    for (let i = -5; i < samples; i++) {
      const r = await page.evaluate((i) => (window as unknown as Hook).ssddpmTest.sample({ pipeline: 'baseline', labels: [((i % 10) + 10) % 10], seed: i + 5, sampler: 'ddpm', clip: false }), i);
      if (i >= 0) {
        times.push(r.ms);
        engine.push(r.engineMs);
      }
    }
    const pageMean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(`page (${JSON.stringify(backend)}): ${fmt(pageMean)} ms per baseline sample (median ${fmt(median(times))}; in onnxruntime-web ${fmt(engine.reduce((a, b) => a + b, 0) / engine.length)}), ${samples} samples after 5 untimed`);
    const node = nodeMsPerSample(getNumThreads());
    const node1 = nodeMsPerSample(1);
    console.log(`node, onnxruntime-node: ${fmt(node)} ms per baseline sample (${getNumThreads()} threads, as ssddpm speed), ${fmt(node1)} ms with 1 thread; ${nodeSamples} samples`);
    console.log(`summary: first_sample_ms=${fmt(median(cold))} first_sample_cached_ms=${fmt(median(cached))} page_ms=${fmt(pageMean)} node_ms=${fmt(node)} ratio=${(pageMean / node).toFixed(2)}`);
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
