// What the addon's native files share: tensor handles and the guard that turns native errors into JS errors.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <exception>

namespace ssddpm {

/** A JS handle owning `t` (null for an undefined tensor). */
Napi::Value wrapTensor(Napi::Env env, at::Tensor t);

/** The tensor behind a handle; throws a JS TypeError naming `what` for anything else or a released tensor. */
const at::Tensor& tensorOf(const Napi::Value& v, const char* what);

/** The generator behind a handle; throws a JS TypeError naming `what` for anything else. */
at::Generator& generatorOf(const Napi::Value& v, const char* what);

/** Registers the c10d functions (distributed.cc) on the addon's exports. */
void initDistributed(Napi::Env env, Napi::Object exports);

/** Registers the CUDA-graph functions (cuda-graph.cc) on the addon's exports. */
void initCudaGraphs(Napi::Env env, Napi::Object exports);

// Every entry point runs inside this guard: libtorch errors become JS errors with libtorch's message.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body(env);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

}  // namespace ssddpm
