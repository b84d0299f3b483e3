// The `ssddpm` command line.
import { Command, CommanderError } from '@commander-js/extra-typings';
import { trainCommand } from './commands/train.ts';
import { sampleCommand } from './commands/sample.ts';
import { generateCommand } from './commands/generate.ts';
import { forwardCommand, reverseCommand } from './commands/figures.ts';
import { casCommand, exportCommand, fidelityCommand, speedCommand } from './commands/evaluate.ts';
import { paperCommand } from './commands/paper.ts';
import { reportCommand } from './commands/report.ts';
import { serveCommand, webCommand } from './commands/web.ts';
import { stopAllProgress } from './progress.ts';
import { retainFreedHostMemory, setNumThreads, threadsEnvironmentProblem, torchVersion } from '../torch/runtime.ts';

// A reader that stops early (`ssddpm train --help | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

// Training and sampling reallocate the same buffers at every step: keep freed memory for them (7 % of a CPU training step).
retainFreedHostMemory();

const program = new Command('ssddpm')
  .description('Scale-space DDPMs on MNIST: train, sample, generate sets and draw the diffusion processes (libtorch ' + torchVersion + ')')
  .option('--threads <n>', 'libtorch intra-op threads (default: all cores, or $TORCH_NUM_THREADS)')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .hook('preAction', (cmd) => {
    const threads = cmd.opts().threads;
    if (threads !== undefined) {
      const n = Number(threads);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: expected a positive integer, got '${threads}'`);
      try {
        setNumThreads(n);
      } catch (err) {
        throw new Error(`--${(err as Error).message}`);
      }
    } else if (threadsEnvironmentProblem !== undefined) {
      throw new Error(`${threadsEnvironmentProblem} (or give --threads)`);
    }
  });

for (const cmd of [trainCommand, sampleCommand, generateCommand, forwardCommand, reverseCommand, casCommand, fidelityCommand, speedCommand, paperCommand, reportCommand, exportCommand, webCommand, serveCommand]) {
  program.addCommand(cmd.exitOverride().showHelpAfterError('(add --help for usage)'));
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  stopAllProgress();
  if (err instanceof CommanderError) {
    // commander has already printed its message (or the help / version text).
    process.exitCode = err.exitCode;
  } else {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ssddpm: ${message}\n`);
    if (process.env.SSDDPM_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}
