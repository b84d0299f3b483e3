#!/usr/bin/env node
// Locates libtorch for the native build. Order: $LIBTORCH (an official libtorch folder, a pip `torch`
// package folder, or a site-packages folder holding `torch/`), then Debian's libtorch-dev.
// Prints gyp-ready values for binding.gyp (`--include`, `--libdirs`, `--libs`, `--defines`: the C++ ABI,
// USE_C10D_GLOO where Gloo's headers are found, SSDDPM_CUDA_GRAPHS where libtorch has CUDA and CUDA's own headers
// are found), or with
// `--check` verifies that one is found and exits 1 with a single clear message when none is.
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

function fromRoot(root) {
  for (const base of [root, join(root, 'torch')]) {
    const inc = join(base, 'include');
    const lib = join(base, 'lib');
    if (existsSync(join(inc, 'torch', 'csrc', 'api', 'include')) && existsSync(join(lib, 'libtorch.so'))) {
      return { include: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], libdir: lib, rpath: true };
    }
  }
  return null;
}

function debian() {
  const inc = '/usr/include/torch/csrc/api/include';
  const libdirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'];
  const libdir = libdirs.find((d) => existsSync(join(d, 'libtorch.so')));
  if (existsSync(inc) && libdir) return { include: [inc], libdir, rpath: false };
  return null;
}

function locate() {
  const env = process.env.LIBTORCH;
  if (env) {
    const found = fromRoot(resolve(env));
    if (!found) {
      fail(`LIBTORCH=${env} does not hold a libtorch (expected include/torch/csrc/api/include and lib/libtorch.so, ` +
        `directly or under torch/).`);
    }
    return found;
  }
  return debian();
}

function fail(message) {
  process.stderr.write(`\nssddpm: ${message}\n\n`);
  process.exit(1);
}

const found = locate();
if (!found) {
  fail('libtorch was not found. On Debian/Ubuntu: `sudo apt-get install libtorch-dev libopenblas0-openmp`; ' +
    'or set LIBTORCH=/path/to/libtorch (an official libtorch zip, or a pip torch package folder) and reinstall.');
}

const has = (name) => existsSync(join(found.libdir, name));
const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
if (has('libtorch_cuda.so')) libs.push('-ltorch_cuda');
if (has('libc10_cuda.so')) libs.push('-lc10_cuda');

// pip wheels before torch 2.7 use the pre-C++11 std::string ABI; match whatever libc10 was built with.
function cxx11Abi() {
  try {
    const out = execFileSync('nm', ['-DC', join(found.libdir, 'libc10.so')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    return /std::__cxx11::/.test(out) ? 1 : 0;
  } catch {
    return 1;
  }
}

// c10d's Gloo process group needs Gloo's headers (Debian: libgloo-dev; pip wheels ship them): without them the
// addon builds without torch.distributed, and says so when it is asked for.
function glooDefines() {
  const dirs = [...found.include, '/usr/include'];
  const has = (rel) => dirs.some((d) => existsSync(join(d, rel)));
  return has('torch/csrc/distributed/c10d/ProcessGroupGloo.hpp') && has('gloo/algorithm.h') ? ['USE_C10D_GLOO'] : [];
}

// CUDA graphs (native/cuda-graph.cc) need CUDA's runtime headers beside a CUDA libtorch: from $CUDA_HOME, the
// toolkit's usual place, or the nvidia-* pip packages next to a pip torch.
function cudaInclude() {
  if (!has('libtorch_cuda.so') || !has('libc10_cuda.so')) return undefined;
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean).map((d) => join(d, 'include'));
  const nvidia = join(found.libdir, '..', '..', 'nvidia');
  if (existsSync(nvidia)) {
    for (const pkg of readdirSync(nvidia)) candidates.push(join(nvidia, pkg, 'include'));
  }
  return candidates.find((d) => existsSync(join(d, 'cuda_runtime_api.h')));
}
const cudaHeaders = cudaInclude();

const arg = process.argv[2];
if (arg === '--check') {
  process.stderr.write(`ssddpm: building against libtorch in ${found.libdir}\n`);
} else if (arg === '--include') {
  console.log([...found.include, ...(cudaHeaders === undefined ? [] : [cudaHeaders])].join(' '));
} else if (arg === '--libdirs') {
  console.log(found.libdir);
} else if (arg === '--ldflags') {
  const flags = [`-L${found.libdir}`, '-Wl,--no-as-needed'];
  if (found.rpath) flags.push(`-Wl,-rpath,${found.libdir}`);
  console.log(flags.join(' '));
} else if (arg === '--libs') {
  console.log(libs.join(' '));
} else if (arg === '--defines') {
  console.log([`_GLIBCXX_USE_CXX11_ABI=${cxx11Abi()}`, ...glooDefines(), ...(cudaHeaders === undefined ? [] : ['SSDDPM_CUDA_GRAPHS'])].join(' '));
} else {
  console.log(JSON.stringify({ ...found, libs, libraries: readdirSync(found.libdir).filter((f) => f.startsWith('libtorch')) }, null, 2));
}
