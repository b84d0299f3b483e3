// CUDA graphs (torch.cuda.CUDAGraph): the kernels a stretch of TypeScript launches are recorded once and then
// replayed with one launch. Built where libtorch has CUDA and CUDA's headers are found (SSDDPM_CUDA_GRAPHS,
// set by scripts/find-libtorch.mjs); elsewhere the functions exist and say why they cannot run.

#include "handles.h"

#ifdef SSDDPM_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>
#endif

#include <string>

namespace {

using ssddpm::guarded;

const napi_type_tag kGraphTag = {0x5d3c2b1a09f8e7d6ULL, 0x4c3b2a1908f7e6d5ULL};

#ifdef SSDDPM_CUDA_GRAPHS

struct GraphBox {
  at::cuda::CUDAGraph graph;
  // Capture runs on a side stream, as torch.cuda.graph does: the legacy default stream cannot be captured.
  std::optional<c10::cuda::CUDAStreamGuard> streamGuard;
  bool capturing = false;
  bool captured = false;
};

GraphBox* graphOf(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<GraphBox>>().CheckTypeTag(&kGraphTag)) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a CUDA graph handle");
  }
  return v.As<Napi::External<GraphBox>>().Data();
}

Napi::Value GraphNew(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto ext = Napi::External<GraphBox>::New(env, new GraphBox(), [](Napi::BasicEnv, GraphBox* b) { delete b; });
    ext.TypeTag(&kGraphTag);
    return ext;
  });
}

// cudaGraphCaptureBegin(graph, device): work queued so far finishes first, then every kernel launched on this
// device's current stream is recorded until cudaGraphCaptureEnd.
Napi::Value GraphCaptureBegin(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    GraphBox* box = graphOf(info[0], "cudaGraphCaptureBegin");
    if (box->capturing || box->captured) throw Napi::Error::New(env, "cudaGraphCaptureBegin: this graph has already been captured");
    const c10::Device device(info[1].As<Napi::String>().Utf8Value());
    if (!device.is_cuda()) throw Napi::TypeError::New(env, "cudaGraphCaptureBegin: CUDA graphs capture CUDA devices, got " + device.str());
    {
      c10::cuda::CUDAGuard deviceGuard(device);
      c10::cuda::device_synchronize();
    }
    // The stream guard makes the device current until the capture ends, then gives back the previous one.
    box->streamGuard.emplace(c10::cuda::getStreamFromPool(false, device.index()));
    try {
      box->graph.capture_begin();
    } catch (...) {
      box->streamGuard.reset();
      throw;
    }
    box->capturing = true;
    return env.Undefined();
  });
}

// cudaGraphCaptureEnd(graph): ends the recording and makes the graph replayable. A capture broken by an
// operation that cannot be recorded (a read back to the host, say) throws here; the graph is then reset.
Napi::Value GraphCaptureEnd(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    GraphBox* box = graphOf(info[0], "cudaGraphCaptureEnd");
    if (!box->capturing) throw Napi::Error::New(env, "cudaGraphCaptureEnd: no capture is under way on this graph");
    box->capturing = false;
    try {
      box->graph.capture_end();
    } catch (...) {
      box->streamGuard.reset();
      try {
        box->graph.reset();
      } catch (...) {
      }
      throw;
    }
    box->streamGuard.reset();
    box->captured = true;
    return env.Undefined();
  });
}

// Replays on the current stream, so it is ordered with the eager work around it.
Napi::Value GraphReplay(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    GraphBox* box = graphOf(info[0], "cudaGraphReplay");
    if (!box->captured) throw Napi::Error::New(env, "cudaGraphReplay: the graph has not been captured");
    box->graph.replay();
    return env.Undefined();
  });
}

// Frees the graph's executable and its private memory pool (the static tensors stay valid only while held).
Napi::Value GraphReset(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    GraphBox* box = graphOf(info[0], "cudaGraphReset");
    if (box->capturing) throw Napi::Error::New(env, "cudaGraphReset: the graph is being captured");
    box->graph.reset();
    box->captured = false;
    return env.Undefined();
  });
}

const bool kAvailable = true;

#else

const bool kAvailable = false;

Napi::Value Unavailable(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    throw Napi::Error::New(env,
                           "CUDA graphs need the addon built against a CUDA libtorch with CUDA's headers "
                           "(scripts/gpu-bench.sh builds one from a pip-installed CUDA PyTorch)");
    return env.Undefined();
  });
}

#define GraphNew Unavailable
#define GraphCaptureBegin Unavailable
#define GraphCaptureEnd Unavailable
#define GraphReplay Unavailable
#define GraphReset Unavailable

#endif

}  // namespace

namespace ssddpm {

void initCudaGraphs(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("cudaGraphNew", GraphNew);
  fn("cudaGraphCaptureBegin", GraphCaptureBegin);
  fn("cudaGraphCaptureEnd", GraphCaptureEnd);
  fn("cudaGraphReplay", GraphReplay);
  fn("cudaGraphReset", GraphReset);
  exports.Set("cudaGraphsAvailable", Napi::Boolean::New(env, kAvailable));
}

}  // namespace ssddpm
