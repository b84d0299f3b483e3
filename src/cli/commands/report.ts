import { Command } from '@commander-js/extra-typings';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { lockFolder } from '../../io/lock.ts';
import { migrateResults } from '../../report/results.ts';
import { writeReport } from '../../report/write.ts';

export const reportCommand = new Command('report')
  .description("render a report folder again from its results.json (after an upgrade of the renderer or of the results' format): report.md, report.html and the charts")
  .requiredOption('--results <file>', 'a results.json written by `ssddpm paper` (any version)')
  .option('--out <dir>', 'the report folder (default: the folder of --results, where its figures are)')
  .addHelpText('after', '\nThe numbers are read, never recomputed; results.json is rewritten in the current format.\nExample:\n  ssddpm report --results docs/paper-report/results.json')
  .action(async (o) => {
    if (!existsSync(o.results)) throw new Error(`${o.results}: no such file`);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(o.results, 'utf8'));
    } catch (err) {
      throw new Error(`${o.results}: not valid JSON (${(err as Error).message})`);
    }
    const results = migrateResults(raw);
    const out = o.out ?? dirname(o.results);
    const missing = [...results.figures.map((f) => f.file), ...results.toy1d.flatMap((t) => [t.forwardFigure, t.reverseFigure])].filter((f) => !existsSync(join(out, f)));
    if (missing.length > 0) throw new Error(`${out} lacks figures the results name: ${missing.join(', ')}`);
    const release = lockFolder(out, 'report folder');
    const paths = await writeReport(out, results).finally(release);
    console.log(`wrote ${paths.html} (also report.md, results.json)`);
  });
