// Progress bars on stderr (cli-progress): a live bar on a terminal, periodic lines in logs.
import cliProgress from 'cli-progress';

export interface Progress {
  /** Sets the completed count and the values shown after the bar (e.g. `{ loss: '0.0634' }`). */
  update(done: number, values?: Record<string, string | number>): void;
  stop(): void;
}

export function createProgress(label: string, total: number, fields: string[] = []): Progress {
  const suffix = fields.map((f) => `${f}={${f}}`).join(' ');
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} {percentage}% | {duration_formatted} elapsed, eta {eta_formatted}${suffix ? ` | ${suffix}` : ''}`,
      stream: process.stderr,
      noTTYOutput: true,
      notTTYSchedule: 10_000,
      etaBuffer: 50,
      hideCursor: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, Object.fromEntries(fields.map((f) => [f, '-'])));
  return {
    update: (done, values) => bar.update(done, values),
    stop: () => bar.stop(),
  };
}
