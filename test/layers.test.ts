// The source tree reads like the system, bottom to top: every import points to the same folder or one below it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** The folders of src/, lowest first. A folder may import from itself and from any folder before it. */
const LAYERS = ['torch', 'nn', 'optim', 'io', 'distributed', 'data', 'images', 'diffusion', 'models', 'onnx', 'pipelines', 'training', 'eval', 'report', 'web', 'experiments', 'cli'] as const;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

// The relative imports of a TypeScript file's text (static `import … from`, `export … from`, dynamic `import()`).
function imports(file: string, text: string): string[] {
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)];
  return found.map((m) => resolve(dirname(file), m[1]!));
}

function layerOf(path: string): string {
  return relative(SRC, path).split(/[\\/]/)[0]!;
}

/** Every import that points up the layers, as 'from → to'. */
function upwardImports(files: readonly { path: string; text: string }[]): string[] {
  const rank = (layer: string) => LAYERS.indexOf(layer as (typeof LAYERS)[number]);
  return files.flatMap(({ path: file, text }) =>
    imports(file, text)
      .filter((target) => target.startsWith(SRC) && rank(layerOf(target)) > rank(layerOf(file)))
      .map((target) => `${relative(SRC, file)} → ${relative(SRC, target)}`),
  );
}

test('every folder of src/ has a place in the layers', () => {
  const folders = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
  assert.deepEqual(folders.filter((f) => !(LAYERS as readonly string[]).includes(f)), []);
});

test('no import points from a lower folder to a higher one', () => {
  const files = sources(SRC).map((path) => ({ path, text: readFileSync(path, 'utf8') }));
  const pipeline = files.find((f) => f.path === join(SRC, 'pipelines', 'pipeline.ts'))!;
  assert.ok(imports(pipeline.path, pipeline.text).includes(join(SRC, 'pipelines', 'diffusion-model.ts')), 'imports are found');
  assert.deepEqual(upwardImports(files), []);
});

test('the check reports an upward import, static or dynamic, and allows downward ones', () => {
  const probe = (text: string) => upwardImports([{ path: join(SRC, 'diffusion', 'probe.ts'), text }]);
  assert.deepEqual(probe("import { loadPipeline } from '../pipelines/pipeline.ts';"), ['diffusion/probe.ts → pipelines/pipeline.ts']);
  assert.deepEqual(probe("export type { X } from '../report/results.ts';"), ['diffusion/probe.ts → report/results.ts']);
  assert.deepEqual(probe("const m = await import('../cli/main.ts');"), ['diffusion/probe.ts → cli/main.ts']);
  assert.deepEqual(probe("import { tidy } from '../torch/scope.ts';\nimport type { Scheduler } from './scheduler.ts';"), []);
});
