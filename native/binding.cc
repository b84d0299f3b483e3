// The whole native side of the toolkit: a thin Node-API layer over libtorch.
//
// It owns tensor and generator handles and offers one generic `callOp` that reaches any ATen operator
// through the dispatcher's boxed calling convention (autograd included). JS arguments are converted
// according to the operator's schema, so the TypeScript layer only names the operator and passes values.
// Everything with logic lives in TypeScript.

#include <napi.h>

#include "handles.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define SSDDPM_PROFILER 1
#endif
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// ---------------------------------------------------------------------------------------------------------
// Handles

struct TensorBox {
  at::Tensor tensor;
  int64_t reportedBytes = 0;
};

struct GeneratorBox {
  at::Generator generator;
};

// Type tags tell our externals apart from each other and from foreign ones.
const napi_type_tag kTensorTag = {0x8b1f2c3d4e5f6071ULL, 0x1a2b3c4d5e6f7081ULL};
const napi_type_tag kGeneratorTag = {0x9c2e3d4f5a6b7c8dULL, 0x2b3c4d5e6f708192ULL};

std::atomic<int64_t> gLiveTensors{0};

int64_t storageBytes(const at::Tensor& t) {
  if (!t.defined()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

// Drops the tensor held by a box, giving its bytes back to V8's external-memory account.
void releaseBox(node_api_basic_env env, TensorBox* box) {
  if (box->tensor.defined()) {
    box->tensor = at::Tensor();
    gLiveTensors--;
  }
  if (box->reportedBytes != 0) {
    int64_t ignored;
    napi_adjust_external_memory(env, -box->reportedBytes, &ignored);
    box->reportedBytes = 0;
  }
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* box = new TensorBox{std::move(t), 0};
  box->reportedBytes = storageBytes(box->tensor);
  gLiveTensors++;
  if (box->reportedBytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->reportedBytes);
  // The finalizer is a safety net only: TypeScript releases tensors deterministically. It is a basic
  // (GC-time) finalizer: Node 20 defers ordinary ones to the event loop, which synchronous training loops
  // never reach, so the boxes of released handles would pile up (~65 KB of RSS per training step).
  auto ext = Napi::External<TensorBox>::New(env, box, [](Napi::BasicEnv env, TensorBox* b) {
    releaseBox(env, b);
    delete b;
  });
  ext.TypeTag(&kTensorTag);
  return ext;
}

bool isTensorHandle(const Napi::Value& v) {
  if (!v.IsExternal()) return false;
  return v.As<Napi::External<TensorBox>>().CheckTypeTag(&kTensorTag);
}

TensorBox* boxOf(const Napi::Value& v, const char* what) {
  if (!isTensorHandle(v)) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a tensor handle");
  return v.As<Napi::External<TensorBox>>().Data();
}

const at::Tensor& tensorOf(const Napi::Value& v, const char* what) {
  TensorBox* box = boxOf(v, what);
  if (!box->tensor.defined()) {
    throw Napi::Error::New(v.Env(), std::string(what) + ": the tensor has been released (disposed)");
  }
  return box->tensor;
}

Napi::Value wrapGenerator(Napi::Env env, at::Generator g) {
  auto ext = Napi::External<GeneratorBox>::New(env, new GeneratorBox{std::move(g)},
                                                [](Napi::BasicEnv, GeneratorBox* b) { delete b; });
  ext.TypeTag(&kGeneratorTag);
  return ext;
}

at::Generator& generatorOf(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<GeneratorBox>>().CheckTypeTag(&kGeneratorTag)) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a generator handle");
  }
  return v.As<Napi::External<GeneratorBox>>().Data()->generator;
}

using ssddpm::guarded;

// ---------------------------------------------------------------------------------------------------------
// dtypes

struct DTypeName {
  const char* name;
  at::ScalarType type;
};

const DTypeName kDTypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
    {"uint8", at::kByte},    {"bool", at::kBool},
};

const char* dtypeName(at::ScalarType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return c10::toString(t);
}

at::ScalarType dtypeFromName(Napi::Env env, const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  throw Napi::TypeError::New(env, "unknown dtype '" + name + "'");
}

// ---------------------------------------------------------------------------------------------------------
// Operators by name

std::vector<c10::OperatorHandle> gOps;
std::unordered_map<std::string, int> gOpIds;

std::string describe(const Napi::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsBoolean()) return "boolean";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsArray()) return "array";
  if (isTensorHandle(v)) return "tensor";
  if (v.IsExternal()) return "generator";
  return "object";
}

[[noreturn]] void badArg(const Napi::Env& env, const c10::FunctionSchema& schema, const c10::Argument& arg,
                         const Napi::Value& v, const std::string& expected) {
  throw Napi::TypeError::New(env, schema.name() + (schema.overload_name().empty() ? "" : "." + schema.overload_name()) +
                                      ": argument '" + arg.name() + "' expected " + expected + ", got " +
                                      describe(v));
}

int64_t toInt(const Napi::Env& env, const c10::FunctionSchema& s, const c10::Argument& a, const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) badArg(env, s, a, v, "an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) badArg(env, s, a, v, "an integer (got a fraction)");
  return static_cast<int64_t>(d);
}

double toDouble(const Napi::Env& env, const c10::FunctionSchema& s, const c10::Argument& a, const Napi::Value& v) {
  if (!v.IsNumber()) badArg(env, s, a, v, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool isIntLike(c10::TypeKind k) {
  return k == c10::TypeKind::IntType || k == c10::TypeKind::SymIntType || k == c10::TypeKind::ScalarTypeType ||
         k == c10::TypeKind::LayoutType || k == c10::TypeKind::MemoryFormatType;
}

c10::IValue toIValue(const Napi::Env& env, const c10::FunctionSchema& s, const c10::Argument& a,
                     const c10::TypePtr& type, const Napi::Value& v) {
  const c10::TypeKind kind = type->kind();
  if (kind == c10::TypeKind::OptionalType) {
    if (v.IsNull() || v.IsUndefined()) return c10::IValue();
    return toIValue(env, s, a, type->expectRef<c10::OptionalType>().getElementType(), v);
  }
  if (kind == c10::TypeKind::TensorType) return tensorOf(v, (s.name() + " argument '" + a.name() + "'").c_str());
  if (isIntLike(kind)) return toInt(env, s, a, v);
  if (kind == c10::TypeKind::FloatType) return toDouble(env, s, a, v);
  if (kind == c10::TypeKind::BoolType) {
    if (!v.IsBoolean()) badArg(env, s, a, v, "a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  if (kind == c10::TypeKind::NumberType) {  // at::Scalar
    if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
    if (!v.IsNumber()) badArg(env, s, a, v, "a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.007e15)
      return at::Scalar(static_cast<int64_t>(d));
    return at::Scalar(d);
  }
  if (kind == c10::TypeKind::StringType) {
    if (!v.IsString()) badArg(env, s, a, v, "a string");
    return v.As<Napi::String>().Utf8Value();
  }
  if (kind == c10::TypeKind::DeviceObjType) {
    if (!v.IsString()) badArg(env, s, a, v, "a device string such as 'cpu' or 'cuda:0'");
    return c10::Device(v.As<Napi::String>().Utf8Value());
  }
  if (kind == c10::TypeKind::GeneratorType) return generatorOf(v, (s.name() + " argument '" + a.name() + "'").c_str());
  if (kind == c10::TypeKind::ListType) {
    const c10::TypePtr elem = type->expectRef<c10::ListType>().getElementType();
    const c10::TypeKind ek = elem->kind();
    // `int[2] stride` accepts a single int, as in PyTorch.
    if (!v.IsArray()) {
      if (v.IsNumber() && a.N() && isIntLike(ek)) {
        return c10::List<int64_t>(std::vector<int64_t>(*a.N(), toInt(env, s, a, v)));
      }
      badArg(env, s, a, v, "an array");
    }
    Napi::Array arr = v.As<Napi::Array>();
    const uint32_t n = arr.Length();
    if (isIntLike(ek)) {
      c10::List<int64_t> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; i++) out.push_back(toInt(env, s, a, arr.Get(i)));
      return out;
    }
    if (ek == c10::TypeKind::FloatType) {
      c10::List<double> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; i++) out.push_back(toDouble(env, s, a, arr.Get(i)));
      return out;
    }
    if (ek == c10::TypeKind::BoolType) {
      c10::List<bool> out;
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value e = arr.Get(i);
        if (!e.IsBoolean()) badArg(env, s, a, e, "a boolean element");
        out.push_back(e.As<Napi::Boolean>().Value());
      }
      return out;
    }
    if (ek == c10::TypeKind::TensorType) {
      c10::List<at::Tensor> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; i++) out.push_back(tensorOf(arr.Get(i), (s.name() + " list element").c_str()));
      return out;
    }
    if (ek == c10::TypeKind::OptionalType &&
        elem->expectRef<c10::OptionalType>().getElementType()->kind() == c10::TypeKind::TensorType) {
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value e = arr.Get(i);
        if (e.IsNull() || e.IsUndefined()) out.push_back(c10::nullopt);
        else out.push_back(tensorOf(e, (s.name() + " list element").c_str()));
      }
      return out;
    }
  }
  throw Napi::TypeError::New(env, s.name() + ": argument '" + a.name() + "' has unsupported type " + type->str());
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrapTensor(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, wrapTensor(env, list.get(i)));
    return out;
  }
  if (v.isIntList()) {
    auto list = v.toIntList();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, Napi::Number::New(env, static_cast<double>(list.get(i))));
    return out;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array out = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) out.Set(i, fromIValue(env, elems[i]));
    return out;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, fromIValue(env, list[i]));
    return out;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  throw Napi::Error::New(env, "unsupported return type " + v.tagKind());
}

// opId(name, overload) -> id. Resolving once lets hot loops skip the name lookup.
Napi::Value OpId(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
      throw Napi::TypeError::New(env, "opId(name, overload) expects two strings");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    std::string overload = info[1].As<Napi::String>().Utf8Value();
    if (name.find("::") == std::string::npos) name = "aten::" + name;
    const std::string key = name + "." + overload;
    auto it = gOpIds.find(key);
    if (it != gOpIds.end()) return Napi::Number::New(env, it->second);
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle) throw Napi::Error::New(env, "unknown operator " + name + (overload.empty() ? "" : "." + overload));
    gOps.push_back(*handle);
    const int id = static_cast<int>(gOps.size() - 1);
    gOpIds.emplace(key, id);
    return Napi::Number::New(env, id);
  });
}

const c10::OperatorHandle& opOf(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "expected an operator id from opId()");
  const int64_t id = v.As<Napi::Number>().Int64Value();
  if (id < 0 || id >= static_cast<int64_t>(gOps.size())) throw Napi::RangeError::New(env, "invalid operator id");
  return gOps[static_cast<size_t>(id)];
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::ostringstream os;
    os << opOf(env, info[0]).schema();
    return Napi::String::New(env, os.str());
  });
}

// callOp(id, args[]): positional arguments; `undefined` or a missing trailing argument takes the
// schema's default. Returns a single value, an array for several results, or undefined for none.
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const c10::OperatorHandle& op = opOf(env, info[0]);
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "callOp(id, args) expects an array");
    Napi::Array args = info[1].As<Napi::Array>();
    const c10::FunctionSchema& schema = op.schema();
    const auto& formals = schema.arguments();
    const uint32_t given = args.Length();
    if (given > formals.size()) {
      throw Napi::TypeError::New(env, schema.name() + ": expected at most " + std::to_string(formals.size()) +
                                          " arguments, got " + std::to_string(given));
    }
    torch::jit::Stack stack;
    stack.reserve(formals.size());
    for (size_t i = 0; i < formals.size(); i++) {
      const c10::Argument& formal = formals[i];
      Napi::Value v = i < given ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (v.IsUndefined()) {
        if (formal.default_value()) {
          stack.push_back(*formal.default_value());
          continue;
        }
        if (formal.type()->kind() != c10::TypeKind::OptionalType) {
          throw Napi::TypeError::New(env, schema.name() + ": missing argument '" + formal.name() + "'");
        }
      }
      stack.push_back(toIValue(env, schema, formal, formal.type(), v));
    }
    op.callBoxed(&stack);
    if (stack.empty()) return env.Undefined();
    if (stack.size() == 1) return fromIValue(env, stack[0]);
    Napi::Array out = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) out.Set(i, fromIValue(env, stack[i]));
    return out;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Tensors <-> typed arrays

std::vector<int64_t> shapeFrom(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "shape must be an array of non-negative integers");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> shape(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) throw Napi::TypeError::New(env, "shape must be an array of non-negative integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d)))
      throw Napi::TypeError::New(env, "shape must be an array of non-negative integers");
    shape[i] = static_cast<int64_t>(d);
  }
  return shape;
}

at::ScalarType dtypeOfTypedArray(const Napi::Env& env, napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array: return at::kFloat;
    case napi_float64_array: return at::kDouble;
    case napi_bigint64_array: return at::kLong;
    case napi_int32_array: return at::kInt;
    case napi_int16_array: return at::kShort;
    case napi_int8_array: return at::kChar;
    case napi_uint8_array: return at::kByte;
    default: throw Napi::TypeError::New(env, "unsupported typed array type");
  }
}

// fromArray(typedArray, shape, dtype?) copies the data; dtype may only reinterpret uint8 as 'bool'.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "fromArray expects a typed array and a shape");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    at::ScalarType dtype = dtypeOfTypedArray(env, arr.TypedArrayType());
    if (info.Length() > 2 && info[2].IsString()) {
      at::ScalarType wanted = dtypeFromName(env, info[2].As<Napi::String>().Utf8Value());
      if (wanted == at::kBool && dtype == at::kByte) dtype = at::kBool;
      else if (wanted != dtype) throw Napi::TypeError::New(env, std::string("fromArray: a ") + dtypeName(dtype) + " array cannot hold " + dtypeName(wanted));
    }
    std::vector<int64_t> shape = shapeFrom(env, info[1]);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (numel != static_cast<int64_t>(arr.ElementLength())) {
      throw Napi::RangeError::New(env, "fromArray: shape holds " + std::to_string(numel) + " elements but the array has " +
                                           std::to_string(arr.ElementLength()));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (numel > 0) {
      uint8_t* src = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
      std::memcpy(t.data_ptr(), src, arr.ByteLength());
    }
    return wrapTensor(env, std::move(t));
  });
}

// toArray(t) -> a typed array holding a contiguous CPU copy (bool comes back as Uint8Array).
Napi::Value ToArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor t = tensorOf(info[0], "toArray").detach();
    if (!t.device().is_cpu()) t = t.to(at::kCPU);
    t = t.contiguous();
    const size_t n = static_cast<size_t>(t.numel());
    const size_t bytes = n * t.element_size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
    if (bytes > 0) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    napi_typedarray_type kind;
    switch (t.scalar_type()) {
      case at::kFloat: kind = napi_float32_array; break;
      case at::kDouble: kind = napi_float64_array; break;
      case at::kLong: kind = napi_bigint64_array; break;
      case at::kInt: kind = napi_int32_array; break;
      case at::kShort: kind = napi_int16_array; break;
      case at::kChar: kind = napi_int8_array; break;
      case at::kByte:
      case at::kBool: kind = napi_uint8_array; break;
      default: throw Napi::TypeError::New(env, std::string("toArray: unsupported dtype ") + dtypeName(t.scalar_type()) + "; convert it first");
    }
    napi_value out;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, kind, n, buf, 0, &out), Napi::Value());
    return Napi::Value(env, out);
  });
}

// info(t) -> [shape, dtype, device, requiresGrad]: one call for everything TypeScript caches.
Napi::Value Info(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& t = tensorOf(info[0], "info");
    Napi::Array shape = Napi::Array::New(env, t.dim());
    for (int64_t i = 0; i < t.dim(); i++) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
    Napi::Array out = Napi::Array::New(env, 4);
    out.Set(0u, shape);
    out.Set(1u, Napi::String::New(env, dtypeName(t.scalar_type())));
    out.Set(2u, Napi::String::New(env, t.device().str()));
    out.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
    return out;
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    releaseBox(env, boxOf(info[0], "free"));
    return env.Undefined();
  });
}

Napi::Value IsReleased(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, !boxOf(info[0], "isReleased")->tensor.defined());
  });
}

// ---------------------------------------------------------------------------------------------------------
// Autograd

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor t = tensorOf(info[0], "setRequiresGrad");
    t.set_requires_grad(info[1].ToBoolean().Value());
    return env.Undefined();
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, tensorOf(info[0], "isLeaf").is_leaf()); });
}

// backward(t, grad?, retainGraph?)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& t = tensorOf(info[0], "backward");
    at::Tensor grad;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) grad = tensorOf(info[1], "backward gradient");
    bool retain = info.Length() > 2 && info[2].ToBoolean().Value();
    t.backward(grad, retain, false);
    return env.Undefined();
  });
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return wrapTensor(env, tensorOf(info[0], "grad").grad()); });
}

// setGrad(t, g | null): null drops the gradient (PyTorch's zero_grad(set_to_none=True)).
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Tensor t = tensorOf(info[0], "setGrad");
    if (info.Length() < 2 || info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad() = at::Tensor();
    else t.mutable_grad() = tensorOf(info[1], "setGrad gradient");
    return env.Undefined();
  });
}

// setData(t, src): t now refers to src's data (device and dtype included), keeping its identity and
// autograd leaf status; how Module.to() moves parameters that optimizers already hold.
Napi::Value SetData(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    TensorBox* box = boxOf(info[0], "setData");
    if (!box->tensor.defined()) throw Napi::Error::New(env, "setData: the tensor has been released (disposed)");
    box->tensor.set_data(tensorOf(info[1], "setData source"));
    const int64_t bytes = storageBytes(box->tensor);
    if (bytes != box->reportedBytes) {
      Napi::MemoryManagement::AdjustExternalMemory(env, bytes - box->reportedBytes);
      box->reportedBytes = bytes;
    }
    return env.Undefined();
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    bool previous = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(info[0].ToBoolean().Value());
    return Napi::Boolean::New(env, previous);
  });
}

// Inference mode is an RAII guard in C++; TypeScript nests enter/exit strictly, so a stack holds them.
std::vector<std::unique_ptr<c10::InferenceMode>> gInferenceGuards;

Napi::Value EnterInferenceMode(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    gInferenceGuards.push_back(std::make_unique<c10::InferenceMode>(true));
    return Napi::Number::New(env, static_cast<double>(gInferenceGuards.size()));
  });
}

Napi::Value ExitInferenceMode(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (gInferenceGuards.empty()) throw Napi::Error::New(env, "exitInferenceMode without a matching enterInferenceMode");
    gInferenceGuards.pop_back();
    return env.Undefined();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Random generators

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const uint64_t seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    at::manual_seed(seed);
    return env.Undefined();
  });
}

// newGenerator(seed, device='cpu'): an independent generator, cloned from the device's default one so that
// CUDA generators need no CUDA headers here.
Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const uint64_t seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c10::Device device(info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu");
    at::Generator def = at::globalContext().defaultGenerator(device);
    at::Generator g;
    {
      std::lock_guard<std::mutex> lock(def.mutex());
      g = def.clone();
    }
    g.set_current_seed(seed);
    return wrapGenerator(env, std::move(g));
  });
}

Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    c10::Device device(info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "cpu");
    return wrapGenerator(env, at::globalContext().defaultGenerator(device));
  });
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = generatorOf(info[0], "generatorGetState");
    std::lock_guard<std::mutex> lock(g.mutex());
    return wrapTensor(env, g.get_state());
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    at::Generator& g = generatorOf(info[0], "generatorSetState");
    const at::Tensor& state = tensorOf(info[1], "generatorSetState state");
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(state);
    return env.Undefined();
  });
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Number::New(env, static_cast<double>(generatorOf(info[0], "generatorSeed").current_seed()));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Runtime

// Autocast (torch.autocast): mixed precision by dispatch. The state is per thread and per device type; the
// TypeScript side nests enter/exit strictly and restores what it was given back.
Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const std::string device = info[0].As<Napi::String>().Utf8Value();
    const bool enabled = info[1].ToBoolean().Value();
    const at::ScalarType dtype = dtypeFromName(env, info[2].As<Napi::String>().Utf8Value());
    const bool cuda = device == "cuda";
    if (!cuda && device != "cpu") throw Napi::TypeError::New(env, "autocast: device type must be 'cpu' or 'cuda', got '" + device + "'");
    auto previous = Napi::Array::New(env, 2);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    // libtorch 2.4 takes the device type; the per-device spellings below are deprecated there.
    const at::DeviceType type = cuda ? at::kCUDA : at::kCPU;
    previous.Set(0u, Napi::Boolean::New(env, at::autocast::is_autocast_enabled(type)));
    previous.Set(1u, Napi::String::New(env, dtypeName(at::autocast::get_autocast_dtype(type))));
    at::autocast::set_autocast_dtype(type, dtype);
    at::autocast::set_autocast_enabled(type, enabled);
#else
    previous.Set(0u, Napi::Boolean::New(env, cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled()));
    previous.Set(1u, Napi::String::New(env, dtypeName(cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype())));
    if (cuda) {
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(enabled);
    } else {
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(enabled);
    }
#endif
    return previous;
  });
}

// Nesting depth of autocast regions: leaving the outermost one drops the casts of weights it cached.
Napi::Value AutocastNesting(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const int depth = info[0].ToBoolean().Value() ? at::autocast::increment_nesting() : at::autocast::decrement_nesting();
    if (depth == 0) at::autocast::clear_cache();
    return Napi::Number::New(env, depth);
  });
}

// Profiling (torch.autograd.profiler, CPU): libtorch records where every operator, autograd function and
// user range starts and ends, on every thread it runs on (the backward pass's included). Stopping hands the
// records over as [name, start (true) or end, microseconds, thread, record id] rows; TypeScript pairs them.
Napi::Value StartProfiler(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
#ifndef SSDDPM_PROFILER
    throw Napi::Error::New(env, "profile: this libtorch has no legacy profiler (torch/csrc/autograd/profiler_legacy.h)");
#else
    torch::autograd::profiler::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
    return env.Undefined();
#endif
  });
}

Napi::Value StopProfiler(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
#ifndef SSDDPM_PROFILER
    return Napi::Array::New(env);
#else
    using torch::autograd::profiler::EventKind;
    const auto lists = torch::autograd::profiler::disableProfilerLegacy();
    auto rows = Napi::Array::New(env);
    uint32_t n = 0;
    for (const auto& list : lists) {
      for (const auto& e : list) {
        if (e.kind() != EventKind::PushRange && e.kind() != EventKind::PopRange) continue;
        auto row = Napi::Array::New(env, 5);
        row.Set(0u, Napi::String::New(env, e.name()));
        row.Set(1u, Napi::Boolean::New(env, e.kind() == EventKind::PushRange));
        row.Set(2u, Napi::Number::New(env, e.cpuUs()));
        row.Set(3u, Napi::Number::New(env, static_cast<double>(e.threadId())));
        row.Set(4u, Napi::Number::New(env, static_cast<double>(e.handle())));
        rows.Set(n++, row);
      }
    }
    return rows;
#endif
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const int64_t n = info[0].As<Napi::Number>().Int64Value();
    if (n < 1) throw Napi::RangeError::New(env, "thread count must be at least 1");
    at::set_num_threads(static_cast<int>(n));
    return env.Undefined();
  });
}

// glibc's malloc thresholds (mallopt): false where the C library is not glibc.
Napi::Value SetMallocThresholds(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
#if defined(__GLIBC__)
    const int mmap = static_cast<int>(info[0].As<Napi::Number>().Int64Value());
    const int trim = static_cast<int>(info[1].As<Napi::Number>().Int64Value());
    return Napi::Boolean::New(env, mallopt(M_MMAP_THRESHOLD, mmap) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1);
#else
    return Napi::Boolean::New(env, false);
#endif
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, at::get_num_threads()); });
}

Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(gLiveTensors.load())); });
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return env.Undefined();
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("opId", OpId);
  fn("opSchema", OpSchema);
  fn("callOp", CallOp);
  fn("fromArray", FromArray);
  fn("toArray", ToArray);
  fn("info", Info);
  fn("free", Free);
  fn("isReleased", IsReleased);
  fn("setRequiresGrad", SetRequiresGrad);
  fn("isLeaf", IsLeaf);
  fn("backward", Backward);
  fn("grad", Grad);
  fn("setGrad", SetGrad);
  fn("setGradEnabled", SetGradEnabled);
  fn("setData", SetData);
  fn("enterInferenceMode", EnterInferenceMode);
  fn("exitInferenceMode", ExitInferenceMode);
  fn("manualSeed", ManualSeed);
  fn("newGenerator", NewGenerator);
  fn("defaultGenerator", DefaultGenerator);
  fn("generatorGetState", GeneratorGetState);
  fn("generatorSetState", GeneratorSetState);
  fn("generatorSeed", GeneratorSeed);
  fn("setAutocast", SetAutocast);
  fn("autocastNesting", AutocastNesting);
  fn("startProfiler", StartProfiler);
  fn("stopProfiler", StopProfiler);
  fn("setNumThreads", SetNumThreads);
  fn("setMallocThresholds", SetMallocThresholds);
  fn("getNumThreads", GetNumThreads);
  fn("liveTensors", LiveTensors);
  fn("cudaSynchronize", CudaSynchronize);
  ssddpm::initDistributed(env, exports);
  ssddpm::initCudaGraphs(env, exports);
  exports.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  exports.Set("cudaAvailable", Napi::Boolean::New(env, torch::cuda::is_available()));
  exports.Set("cudaDeviceCount", Napi::Number::New(env, static_cast<double>(torch::cuda::device_count())));
  return exports;
}

}  // namespace

// What other native files share (handles.h).
namespace ssddpm {
Napi::Value wrapTensor(Napi::Env env, at::Tensor t) { return ::wrapTensor(env, std::move(t)); }
const at::Tensor& tensorOf(const Napi::Value& v, const char* what) { return ::tensorOf(v, what); }
at::Generator& generatorOf(const Napi::Value& v, const char* what) { return ::generatorOf(v, what); }
}  // namespace ssddpm

NODE_API_MODULE(torch_binding, Init)
