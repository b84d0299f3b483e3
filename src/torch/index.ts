// The tensor engine's public surface: `import * as torch from './torch/index.ts'`.
export { Tensor } from './tensor.ts';
export { type DType, DTYPES, isFloating, elementSize } from './dtype.ts';
export { tidy, keep, dispose, consume, memory, type MemoryInfo } from './scope.ts';
export { noGrad, enableGrad, inferenceMode, isGradEnabled } from './grad-mode.ts';
export { autocast, cpuBfloat16Problem, type AutocastOptions } from './autocast.ts';
export { Generator, manualSeed } from './generator.ts';
export { Op, callOp, type OpArg, type OpResult } from './dispatch.ts';
export { profile, type OpProfile, type Profile } from './profiler.ts';
export { setNumThreads, getNumThreads, retainFreedHostMemory, torchVersion, cuda } from './runtime.ts';
export { CUDAGraph, CUDAGraphCaptureError, GraphedFunction, cudaGraphsAvailable, type GraphedFunctionOptions } from './cuda-graph.ts';
export * from './ops/creation.ts';
export * from './ops/random.ts';
export * from './ops/pointwise.ts';
export * from './ops/reduction.ts';
export * from './ops/shape.ts';
export * from './ops/linalg.ts';
