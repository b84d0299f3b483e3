/// <reference lib="dom" />
// Screenshots of the page for the README (docs/web/): the sampler mid-animation (a grid of every label, the
// reverse process at one step: x_t beside that step's x̂0) and the report tab at phone width.
//   npm run screenshots:web -- [--out docs/web]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { buildSite } from '../src/web/site.ts';
import { serveSite } from '../src/web/serve.ts';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'docs/web' }, chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' } } });
const tmp = mkdtempSync(join(tmpdir(), 'ssddpm-screenshots-'));
try {
  await buildSite(join(tmp, 'site'));
  const server = await serveSite(join(tmp, 'site'), { port: 0 });
  const browser = await chromium.launch({ executablePath: values.chromium, args: ['--no-sandbox'] });
  try {
    mkdirSync(values.out, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1000, height: 980 } });
    await page.goto(`${server.url}?autostart=0`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    await page.selectOption('#pipeline', 'cascaded-guided');
    await page.check('#grid');
    await page.fill('#seed', '1');
    await page.fill('#delay', '300');
    await page.click('#sample');
    // The upscaler's stage, a few steps in.
    await page.waitForFunction(() => /Stage 2/.test(document.getElementById('stage-caption')!.textContent ?? '') && /step 4\//.test(document.getElementById('step-info')!.textContent ?? ''), null, { timeout: 120_000 });
    await page.screenshot({ path: join(values.out, 'sampler.png') });
    await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 120_000 });
    const phone = await browser.newPage({ viewport: { width: 390, height: 1100 }, deviceScaleFactor: 1 });
    await phone.goto(`${server.url}?autostart=0#report`);
    await phone.waitForFunction(() => [...document.querySelectorAll('#panel-report img')].slice(0, 3).every((i) => (i as HTMLImageElement).complete));
    await phone.screenshot({ path: join(values.out, 'report.png') });
    console.log(`wrote ${join(values.out, 'sampler.png')} and ${join(values.out, 'report.png')}`);
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
