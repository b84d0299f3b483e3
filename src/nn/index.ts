export { Module, type UnaryModule, type StateDict, type LoadResult } from './module.ts';
export { Linear, Conv2d, BatchNorm2d, GELU, ReLU, MaxPool2d, Flatten, Sequential, type InitOptions } from './layers.ts';
export * as init from './init.ts';
export * as functional from './functional.ts';
