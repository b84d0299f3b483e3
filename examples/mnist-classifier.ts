// Trains the small CNN of the paper's CAS protocol on MNIST for one epoch and prints its test accuracy.
//   npm run demo -- [--epochs N] [--seed S]
import { parseArgs } from 'node:util';
import { loadMnist } from '../src/data/datasets.ts';
import { createProgress } from '../src/cli/progress.ts';
import { trainClassifier, scoreClassifier } from '../src/eval/classifier.ts';
import { getNumThreads, torchVersion } from '../src/torch/runtime.ts';

const { values } = parseArgs({ options: { epochs: { type: 'string', default: '1' }, seed: { type: 'string', default: '0' } } });
const epochs = Number(values.epochs);
const seed = Number(values.seed);
if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`--epochs must be a positive integer, got '${values.epochs}'`);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got '${values.seed}'`);

const train = loadMnist('train');
const test = loadMnist('test');
console.log(`MNIST: ${train.count} training and ${test.count} test images; libtorch ${torchVersion}, ${getNumThreads()} threads`);

const started = performance.now();
const progress = createProgress('train', epochs * Math.ceil(train.count / 128), ['loss']);
const trained = trainClassifier(train, {
  epochs,
  seed,
  onStep: (step, _total, loss) => progress.update(step, { loss: loss.toFixed(4) }),
});
progress.stop();
const seconds = (performance.now() - started) / 1000;
const score = scoreClassifier(trained, test);
console.log(`trained ${epochs} epoch(s) in ${seconds.toFixed(1)} s, final loss ${trained.finalLoss.toFixed(4)}`);
console.log(`per-class accuracy: ${score.perClass.map((a, k) => `${k}:${a.toFixed(3)}`).join(' ')}`);
console.log(`test accuracy: ${(100 * score.accuracy).toFixed(2)} %`);
