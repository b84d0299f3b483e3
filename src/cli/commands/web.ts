import { Command } from '@commander-js/extra-typings';
import { InvalidArgumentError } from 'commander';
import { DEFAULT_GUIDED_RUNS, DEFAULT_REPORT, DEFAULT_RUNS, buildSite } from '../../web/site.ts';
import { serveSite } from '../../web/serve.ts';
import { guidanceScale, nonNegativeInt, positiveNumber } from '../parse.ts';

function port(value: string): number {
  const n = nonNegativeInt(value);
  if (n > 65535) throw new InvalidArgumentError(`expected a port in 0..65535, got '${value}'`);
  return n;
}

export const webCommand = new Command('web')
  .description('build a static site that samples the trained models in the browser (onnxruntime-web) and carries the report')
  .option('--out <dir>', 'the site folder to create (a site built before is replaced)', 'site')
  .option('--baseline <run>', 'the baseline run folder (or an ONNX export of it)', DEFAULT_RUNS.baseline)
  .option('--small <run>', 'the small (14×14) model run folder', DEFAULT_RUNS.small)
  .option('--upscaler <run>', 'the upscaler run folder (the cascade is small, then upscaler)', DEFAULT_RUNS.upscaler)
  .option('--guided-baseline <run>', 'the baseline run trained with --label-dropout, for the guided pipelines (their defaults: the low-noise recipes\' models)', DEFAULT_GUIDED_RUNS.baseline)
  .option('--guided-small <run>', 'the small run trained with --label-dropout', DEFAULT_GUIDED_RUNS.small)
  .option('--guided-upscaler <run>', 'the upscaler run trained with --label-dropout', DEFAULT_GUIDED_RUNS.upscaler)
  .option('--no-guided', 'build without the guided pipelines')
  .option('--guidance <w>', "the guided pipelines' scale until the visitor changes it, at every step unless --guidance-sigma bounds it (default: each pipeline's low-noise recipe, DDIM over every step: the baseline w = 3 at σ_t ≤ 3, small upscaled 2 at σ_t ≤ 2, the cascade 2 at σ_t ≤ 1)", guidanceScale)
  .option('--guidance-sigma <σ>', "the guided pipelines' bound on the noise level σ_t = √((1 − ᾱ_t)/ᾱ_t) guidance applies at, until the visitor changes it", positiveNumber)
  .option('--report <dir>', 'a report folder written by `ssddpm paper` (results.json, charts, figures)', DEFAULT_REPORT)
  .option('--no-report', 'build without the report tab')
  .addHelpText('after', `
The site holds the page and its bundled scripts (app/), onnxruntime-web's WebAssembly files (ort/), each model
exported as one ONNX graph per reverse step (models/), manifest.json (configurations, schedules, pipelines) and
the report (report/). Nothing is fetched from elsewhere: it works offline and on any static host. Pipelines:
baseline, small upscaled (the small model then bilinear ×2) and cascaded (small, then upscaler), each twice: with
the paper's models, and with models trained with label dropout sampled with classifier-free guidance at low
noise levels (the digits a person recognises, their variety kept; the page opens on them and lets the visitor
set the sampler, the scale and the bound). The page uses
WebGPU where the browser offers it, WebAssembly otherwise; WebAssembly threads need the page served with
Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (ssddpm serve sends both).

Examples:
  ssddpm web --out site && ssddpm serve --site site
  ssddpm web --out site --baseline runs/baseline-1 --small runs/small-1 --upscaler runs/upscaler-1 --no-guided
  ssddpm web --out site --guided-baseline runs/baseline-cfg-1 --guidance 3`)
  .action(async (o) => {
    const started = performance.now();
    const report = o.report === false ? null : o.report;
    const guided = o.guided === false ? null : { baseline: o.guidedBaseline, small: o.guidedSmall, upscaler: o.guidedUpscaler };
    const site = await buildSite(o.out, { runs: { baseline: o.baseline, small: o.small, upscaler: o.upscaler }, guided, report, ...(o.guidance === undefined ? {} : { guidance: o.guidance }), ...(o.guidanceSigma === undefined ? {} : { guidanceSigma: o.guidanceSigma }) });
    const mb = (site.bytes / 2 ** 20).toFixed(1);
    console.log(`wrote ${o.out} (${mb} MiB, pipelines: ${site.manifest.pipelines.map((p) => p.name).join(', ')}) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    console.log(`serve it with: ssddpm serve --site ${o.out}`);
  });

export const serveCommand = new Command('serve')
  .description('serve a site built by `ssddpm web` on localhost, with the headers multi-threaded WebAssembly needs')
  .option('--site <dir>', 'the site folder', 'site')
  .option('--port <n>', 'the port (0: any free one)', port, 8080)
  .option('--host <address>', 'the address to listen on', '127.0.0.1')
  .addHelpText('after', `
Every response carries Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp
(the page is then cross-origin isolated, so onnxruntime-web may use WebAssembly threads) and Cache-Control:
no-cache with an ETag (files are revalidated, and reused when unchanged). Stop it with Ctrl-C.

Example:
  ssddpm serve --site site --port 8080`)
  .action(async (o) => {
    const server = await serveSite(o.site, { port: o.port, host: o.host });
    console.log(`serving ${o.site} at ${server.url} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void server.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  });
