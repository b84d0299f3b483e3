// Progress bars on stderr (cli-progress): a live bar on a terminal, periodic lines in logs.
import cliProgress from 'cli-progress';

// Training and sampling loops are synchronous, so cli-progress's timer-driven redraw never gets to run
// when stderr is not a terminal; lines are then printed from `update` at this interval instead.
const LOG_INTERVAL_MS = 10_000;

export interface Progress {
  /** Sets the completed count and the values shown after the bar (e.g. `{ loss: '0.0634' }`). */
  update(done: number, values?: Record<string, string | number>): void;
  stop(): void;
}

// Bars not yet stopped: a command that fails mid-way leaves its bar running, and the bar's redraw timer would
// keep the process alive after the error is reported (see stopAllProgress).
const live = new Set<cliProgress.SingleBar>();

/** Stops every bar still running (the CLI calls this when a command fails, before printing the error). */
export function stopAllProgress(): void {
  for (const bar of live) bar.stop();
  live.clear();
}

export function createProgress(label: string, total: number, fields: string[] = []): Progress {
  const suffix = fields.map((f) => `${f}={${f}}`).join(' ');
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} {percentage}% | {duration_formatted} elapsed, eta {eta_formatted}${suffix ? ` | ${suffix}` : ''}`,
      stream: process.stderr,
      noTTYOutput: true,
      notTTYSchedule: LOG_INTERVAL_MS,
      etaBuffer: 50,
      hideCursor: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, Object.fromEntries(fields.map((f) => [f, '-'])));
  live.add(bar);
  const tty = process.stderr.isTTY === true;
  let lastLine = Date.now();
  return {
    update: (done, values) => {
      bar.update(done, values);
      if (!tty && Date.now() - lastLine >= LOG_INTERVAL_MS) {
        lastLine = Date.now();
        bar.render();
      }
    },
    stop: () => {
      bar.stop();
      live.delete(bar);
    },
  };
}
