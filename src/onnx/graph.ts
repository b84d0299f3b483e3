// Building ONNX models from TypeScript: a graph of named values, nodes and weights (initializers), written as
// the ModelProto of the ONNX standard through onnx-proto (the schema compiled for protobufjs), and read back.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export type ElementType = 'float32' | 'int64';

/** A dimension: a size, or a name for one chosen at run time (e.g. the batch). */
export type Dim = number | string;

/** An attribute value: integers and lists of them, strings, or a float marked as such. */
export type AttributeValue = number | readonly number[] | string | { float: number };

const ELEMENT_TYPES: Record<ElementType, number> = { float32: onnx.TensorProto.DataType.FLOAT, int64: onnx.TensorProto.DataType.INT64 };

/** The opset our graphs are written for (Resize's `axes`, ReduceMax's axes input). */
export const OPSET = 18;
const IR_VERSION = 8;

function valueInfo(name: string, type: ElementType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new RangeError(`attribute ${name}: ${v} is not an integer (mark floats as { float: v })`);
    return { name, type: T.INT, i: v };
  }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INTS, ints: [...v] };
}

export class GraphBuilder {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #used = new Set<string>();
  readonly #scalars = new Map<number, string>();

  /** A name not used yet, from `hint`. */
  name(hint: string): string {
    let name = hint;
    for (let i = 1; this.#used.has(name); i++) name = `${hint}_${i}`;
    this.#used.add(name);
    return name;
  }

  input(name: string, type: ElementType, dims: readonly Dim[]): string {
    if (this.#used.has(name)) throw new Error(`graph value ${name} is defined twice`);
    this.#used.add(name);
    this.#inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Names `value` (the output of a node) as a graph output. */
  output(value: string, name: string, type: ElementType, dims: readonly Dim[]): void {
    if (value !== name) this.#nodes.push({ opType: 'Identity', input: [value], output: [this.#claim(name)], name: this.name(`out_${name}`) });
    this.#outputs.push(valueInfo(name, type, dims));
  }

  #claim(name: string): string {
    if (this.#used.has(name)) throw new Error(`graph value ${name} is defined twice`);
    this.#used.add(name);
    return name;
  }

  /** A weight stored in the model. */
  constant(hint: string, data: Float32Array | BigInt64Array, dims: readonly number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new RangeError(`constant ${hint}: ${data.length} values for shape [${dims.join(', ')}]`);
    const name = this.name(hint);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#initializers.push({ name, dims: [...dims], dataType: ELEMENT_TYPES[data instanceof Float32Array ? 'float32' : 'int64'], rawData: bytes.slice() });
    return name;
  }

  /** A float32 scalar weight, shared between uses. */
  scalar(value: number): string {
    let name = this.#scalars.get(value);
    if (name === undefined) {
      name = this.constant('scalar', Float32Array.of(value), []);
      this.#scalars.set(value, name);
    }
    return name;
  }

  /** One node; returns its (first) output. "" stands for an omitted optional input. */
  op(opType: string, inputs: readonly string[], attributes: Record<string, AttributeValue> = {}, hint = opType.toLowerCase()): string {
    return this.opN(opType, inputs, 1, attributes, hint)[0]!;
  }

  /** One node with `outputs` outputs. */
  opN(opType: string, inputs: readonly string[], outputs: number, attributes: Record<string, AttributeValue> = {}, hint = opType.toLowerCase()): string[] {
    for (const i of inputs) if (i !== '' && !this.#used.has(i)) throw new Error(`${opType}: input ${i} is not defined`);
    const out = Array.from({ length: outputs }, (_, k) => this.name(outputs === 1 ? hint : `${hint}_${k}`));
    this.#nodes.push({
      opType,
      input: [...inputs],
      output: out,
      name: this.name(`node_${hint}`),
      attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
    });
    return out;
  }

  /** The model as bytes, with `metadata` as its metadata_props. */
  encode(opts: { graphName: string; docString?: string; metadata?: Record<string, string> }): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'ssddpm',
      graph: {
        name: opts.graphName,
        docString: opts.docString,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    return onnx.ModelProto.encode(model).finish();
  }
}

export interface OnnxModelSummary {
  opset: number;
  inputs: string[];
  outputs: string[];
  metadata: Record<string, string>;
}

/** Reads what a model declares (opset, input and output names, metadata) without running it. */
export function readOnnxModel(bytes: Uint8Array): OnnxModelSummary {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (graph === null || graph === undefined || (graph.node ?? []).length === 0) throw new Error('it holds no graph');
  const opset = model.opsetImport.find((o) => (o.domain ?? '') === '')?.version;
  return {
    opset: Number(opset ?? 0),
    inputs: (graph.input ?? []).map((v) => v.name ?? ''),
    outputs: (graph.output ?? []).map((v) => v.name ?? ''),
    metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key ?? '', p.value ?? ''])),
  };
}
