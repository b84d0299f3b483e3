import { Command, Option } from '@commander-js/extra-typings';
import { DATASET_NAMES } from '../../data/datasets.ts';
import { PREDICTIONS } from '../../diffusion/step-coefficients.ts';
import { MODEL_KINDS } from '../../pipelines/model-config.ts';
import { PRECISIONS, latestCheckpoint } from '../../pipelines/run-dir.ts';
import { DistributedError, readDistributedEnvironment } from '../../distributed/environment.ts';
import { trainDiffusion } from '../../training/train-diffusion.ts';
import { DEFAULT_TIMEOUT_SECONDS } from '../../training/train-parallel.ts';
import { DEFAULT_TRAINING } from '../../training/training-config.ts';
import { createProgress, type Progress } from '../progress.ts';
import { device, emaDecay, nStepLoss, probability, nonNegativeInt, positiveInt, positiveNumber } from '../parse.ts';
import { checkOutputFolder } from '../output.ts';

export const trainCommand = new Command('train')
  .description('train a diffusion model (baseline 28×28 T=30, small 14×14 T=20, or upscaler 28×28 T=10) on the balanced training subset')
  .addOption(new Option('--model <kind>', 'which model').choices(MODEL_KINDS).default('baseline' as const))
  .requiredOption('--out <dir>', 'run folder: config, checkpoints and log go here')
  .option('--epochs <n>', 'epochs over the training subset', positiveInt, DEFAULT_TRAINING.epochs)
  .option('--seed <n>', 'seed of the network initialisation, data order and noise', nonNegativeInt, DEFAULT_TRAINING.seed)
  .addOption(new Option('--dataset <name>', 'training data').choices(DATASET_NAMES).default('mnist' as const))
  .option('--batch-size <n>', 'images per step', positiveInt, DEFAULT_TRAINING.batchSize)
  .option('--lr <x>', 'Adam learning rate', positiveNumber, DEFAULT_TRAINING.lr)
  .option('--per-class <n>', 'images per class in the balanced subset (5000: the paper\'s 50k)', positiveInt, DEFAULT_TRAINING.perClass)
  .option('--checkpoint-every <steps>', 'also checkpoint every N steps (0: once per epoch)', nonNegativeInt, DEFAULT_TRAINING.checkpointEvery)
  .addOption(new Option('--data-scaling <kind>', "model space: 'standard' (mean 0, std 1: the paper) or 'unit' ([0, 1]: the paper's public code)").choices(['standard', 'unit'] as const).default('standard' as const))
  .option('--cond-noise <σ>', 'upscaler: conditioning augmentation, training noise up to σ (model space; e.g. 0.5)', positiveNumber)
  .option('--label-dropout <p>', 'classifier-free guidance: train with the label dropped with probability p (e.g. 0.1), so that sampling can take --guidance', probability)
  .option('--timesteps <T>', "timesteps T of the noise schedule (the paper's: baseline 30, small 20, upscaler 10): the same cosine curve sampled finer; sample such a model with --sampler ddim --steps n to spend n network evaluations", positiveInt)
  .option('--max-beta <β>', "cap β_t of the cosine schedule here (default 0.999, the paper's; a lower cap tames the first reverse step)", probability)
  .option('--base-channels <n>', "width of the U-Net's first block (the paper's: 16; block i has n·2^i channels)", positiveInt)
  .addOption(new Option('--prediction <p>', "what the network predicts: 'epsilon' (the noise: the paper's) or 'v' (the velocity √ᾱ ε − √(1 − ᾱ) x0: no error amplification at the first reverse step)").choices(PREDICTIONS))
  .option('--zero-terminal-snr', 'rescale the schedule so that ᾱ = 0 at the last timestep (Lin et al. 2024): training sees the pure noise sampling starts from; needs --prediction v')
  .option('--x0-domain-loss <w>', "add the paper's domain loss (its §1.3) with weight w: penalises x̂0 outside the data range, on the noise scale", positiveNumber)
  .option('--n-step-loss <n,w>', "add the paper's n-step loss (its §1.3) with weight w: the error after n deterministic DDIM steps of the model itself (n extra network passes per step; e.g. 3,0.5)", nStepLoss)
  .option('--ema <decay>', 'keep an exponential moving average of the weights (e.g. 0.999); sampling uses it', emaDecay)
  .addOption(new Option('--precision <p>', "network arithmetic: 'float32' (the paper's) or 'bf16' (autocast: bfloat16 convolutions and matrix products, float32 weights, loss and optimizer; on CPUs with AVX-512 BF16 or AMX, refused elsewhere; 1.3-1.7× faster here; of three ε-prediction baselines trained with it one sampled four classes badly, while three v-prediction baselines with --ema sampled as float32's did: see the README)").choices(PRECISIONS).default('float32' as const))
  .option('--resume', 'continue the run in --out from its newest checkpoint (--epochs may raise its length)')
  .option('--device <dev>', "'cpu' or 'cuda[:N]'", device)
  .option('--no-cuda-graphs', 'on a GPU, launch every kernel of a step eagerly instead of replaying each full batch\'s forward and backward as one CUDA graph (the default where the addon can capture them; same results, fewer launches)')
  .option('--nproc <n>', 'data-parallel training on N processes of this machine (c10d Gloo; --batch-size stays the global batch, divisible by N); one thread each on the CPU unless --threads says otherwise, one GPU each with --device cuda', positiveInt, 1)
  .option('--sync-bn', 'data-parallel: batch norm over the global batch (synchronised across processes) instead of each process\'s share; recorded in the run, which --resume keeps')
  .option('--no-sync-bn', 'data-parallel: batch norm over each process\'s share (the default; a resumed run keeps its own)')
  .option('--timeout <s>', 'data-parallel: seconds a process waits for the others (start, each gradient exchange) before the run stops', positiveNumber, DEFAULT_TIMEOUT_SECONDS)
  .addHelpText('after', `
Data-parallel training: --nproc N starts N processes here (this one is rank 0, the only writer of the run
folder). Several machines: start one process per rank with torchrun's variables MASTER_ADDR, MASTER_PORT,
WORLD_SIZE, RANK and LOCAL_RANK set (e.g. \`torchrun --no-python --nnodes 2 --nproc-per-node 2 ... ssddpm train
...\`); ranks other than 0 take the run's settings and state from rank 0; GLOO_SOCKET_IFNAME picks the network
interface. A process that dies or hangs stops the others within --timeout, naming it; --nproc kills the rest
and exits non-zero. Continue with --resume, with any number of processes.

Example:
  ssddpm train --model baseline --epochs 10 --seed 1 --out runs/baseline-1
  ssddpm train --out runs/baseline-1 --resume
  ssddpm train --model baseline --out runs/baseline-2p --nproc 2 --sync-bn`)
  .action((o, cmd) => {
    // A resumed run keeps its settings: only the options given on the command line are passed, and checked.
    const asked = <T>(name: string, value: T): T | undefined => (!o.resume || cmd.getOptionValueSource(name) === 'cli' ? value : undefined);
    const distributed = readDistributedEnvironment();
    // Ranks other than 0 write nothing: the run folder is rank 0's.
    if (!o.resume && (distributed?.rank ?? 0) === 0) checkOutputFolder(o.out);
    const threads = cmd.parent?.opts().threads;
    const training = {
      epochs: asked('epochs', o.epochs), seed: asked('seed', o.seed), batchSize: asked('batchSize', o.batchSize), lr: asked('lr', o.lr), perClass: asked('perClass', o.perClass),
      checkpointEvery: asked('checkpointEvery', o.checkpointEvery), dataScaling: asked('dataScaling', o.dataScaling), ema: asked('ema', o.ema),
      precision: asked('precision', o.precision),
      x0DomainLoss: o.x0DomainLoss, nStepLoss: o.nStepLoss,
    };
    let progress: Progress | undefined;
    const result = withRecoveryHint(o.out, o.nproc, () => trainDiffusion({
      out: o.out,
      resume: o.resume ?? false,
      model: asked('model', o.model),
      dataset: asked('dataset', o.dataset),
      conditioningNoise: o.condNoise,
      labelDropout: o.labelDropout,
      numTimesteps: o.timesteps,
      maxBeta: o.maxBeta,
      prediction: o.prediction,
      baseChannels: o.baseChannels,
      zeroTerminalSnr: o.zeroTerminalSnr,
      training: Object.fromEntries(Object.entries(training).filter(([, v]) => v !== undefined)),
      device: o.device,
      cudaGraphs: o.cudaGraphs,
      nproc: o.nproc,
      distributed,
      syncBatchNorm: o.syncBn,
      timeoutSeconds: o.timeout,
      threadsPerProcess: threads === undefined ? undefined : Number(threads),
      onProgress: (p) => {
        progress ??= createProgress(o.resume ? `train ${o.out}` : `train ${o.model}`, p.totalSteps, ['epoch', 'loss']);
        progress.update(p.step, { epoch: p.epoch, loss: p.loss.toFixed(4) });
      },
    }));
    progress?.stop();
    if ((distributed?.rank ?? 0) !== 0) return;
    console.log(`${o.out}: ${result.steps} steps, final loss ${result.finalLoss.toFixed(4)}, ${result.seconds.toFixed(1)} s`);
  });

// A full disk, a file-size limit or a lost process stops a run between checkpoints: say the one command that
// continues it.
function withRecoveryHint<T>(dir: string, nproc: number, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof DistributedError && latestCheckpoint(dir) !== undefined) err.message += `; continue with: ssddpm train --out ${dir} --resume${nproc > 1 ? ` --nproc ${nproc}` : ''}`;
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof Error && (code === 'ENOSPC' || code === 'EFBIG' || code === 'EDQUOT')) {
      err.message += latestCheckpoint(dir) === undefined
        ? '; make room, then run the same command again'
        : `; make room, then continue with: ssddpm train --out ${dir} --resume`;
    }
    throw err;
  }
}
