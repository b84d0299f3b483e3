/** Element types, named as in PyTorch (`torch.float32` → `'float32'`). */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** c10::ScalarType codes, which is how operator schemas take a dtype. */
const SCALAR_TYPE: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

export const DTYPES = Object.keys(SCALAR_TYPE) as DType[];

export function scalarType(dtype: DType | undefined): number | undefined {
  if (dtype === undefined) return undefined;
  const code = SCALAR_TYPE[dtype];
  if (code === undefined) throw new TypeError(`unknown dtype '${dtype}'; expected one of ${DTYPES.join(', ')}`);
  return code;
}

export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

/** Bytes per element. */
export function elementSize(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
      return 2;
    default:
      return 1;
  }
}
