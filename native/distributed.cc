// c10d through the addon: a TCP store for the rendezvous and Gloo process groups (libtorch's own
// torch.distributed engine), with all-reduce, broadcast and barrier, and an all-reduce that autograd
// differentiates (its backward all-reduces the gradient: what synchronised batch norm needs).
//
// Stores and groups are held here under integer ids; every blocking call takes the caller's timeout and every
// failure (a peer gone, a timeout, a port in use) becomes a JS Error with c10d's message. Rendezvous logic, world
// checks and messages live in TypeScript (src/distributed/).

#include <napi.h>

#include "handles.h"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef USE_C10D_GLOO
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace ssddpm {
namespace {

#ifdef USE_C10D_GLOO

std::mutex gMutex;
int64_t gNextId = 1;
// A store as used (keys under a prefix) and the TCP store under it (its port).
struct StoreEntry {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::TCPStore> tcp;
};
std::unordered_map<int64_t, StoreEntry> gStores;
std::unordered_map<int64_t, c10::intrusive_ptr<c10d::ProcessGroupGloo>> gGroups;

std::chrono::milliseconds msArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "timeout: expected milliseconds");
  const double ms = v.As<Napi::Number>().DoubleValue();
  if (!(ms > 0)) throw Napi::RangeError::New(v.Env(), "timeout: expected a positive number of milliseconds");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

int64_t idArg(const Napi::Value& v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "expected a store or group id");
  return v.As<Napi::Number>().Int64Value();
}

const StoreEntry& entryOf(const Napi::Value& v) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = gStores.find(idArg(v));
  if (it == gStores.end()) throw Napi::Error::New(v.Env(), "the store has been closed");
  return it->second;
}

c10::intrusive_ptr<c10d::Store> storeOf(const Napi::Value& v) {
  return entryOf(v).store;
}

c10::intrusive_ptr<c10d::ProcessGroupGloo> groupOf(int64_t id) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = gGroups.find(id);
  if (it == gGroups.end()) throw std::runtime_error("the process group has been destroyed");
  return it->second;
}

std::vector<std::string> stringsArg(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "expected an array of keys");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

std::vector<at::Tensor> tensorsArg(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected an array of tensors");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(tensorOf(arr.Get(i), what));
  return out;
}

c10d::ReduceOp reduceOpOf(const Napi::Value& v) {
  const std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "sum";
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw Napi::TypeError::New(v.Env(), "reduce op must be 'sum', 'max' or 'min', got '" + name + "'");
}

void allReduceInPlace(int64_t group, std::vector<at::Tensor>& tensors, c10d::ReduceOp op, std::chrono::milliseconds timeout) {
  c10d::AllreduceOptions opts;
  opts.reduceOp = op;
  opts.timeout = timeout;
  auto work = groupOf(group)->allreduce(tensors, opts);
  work->wait(timeout);
}

// storeCreate(host, port, isServer, timeoutMs, prefix) -> id. The server listens on port; clients connect to it,
// retrying until the timeout. Keys live under `prefix` (a restarted run's attempt does not see the last one's).
Napi::Value StoreCreate(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(info[1].As<Napi::Number>().Uint32Value());
    opts.isServer = info[2].ToBoolean().Value();
    opts.waitWorkers = false;
    opts.timeout = msArg(info[3]);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(info[0].As<Napi::String>().Utf8Value(), opts);
    const std::string prefix = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    c10::intrusive_ptr<c10d::Store> store = tcp;
    if (!prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    std::lock_guard<std::mutex> lock(gMutex);
    const int64_t id = gNextId++;
    gStores.emplace(id, StoreEntry{store, tcp});
    return Napi::Number::New(env, static_cast<double>(id));
  });
}

Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const std::string value = info[2].As<Napi::String>().Utf8Value();
    storeOf(info[0])->set(info[1].As<Napi::String>().Utf8Value(), std::vector<uint8_t>(value.begin(), value.end()));
    return env.Undefined();
  });
}

// storeGet(id, key, timeoutMs): waits for the key, then returns its value as a string.
Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto store = storeOf(info[0]);
    const std::string key = info[1].As<Napi::String>().Utf8Value();
    store->wait({key}, msArg(info[2]));
    const std::vector<uint8_t> value = store->get(key);
    return Napi::String::New(env, std::string(value.begin(), value.end()));
  });
}

Napi::Value StoreCheck(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Boolean::New(env, storeOf(info[0])->check(stringsArg(info[1])));
  });
}

Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const int64_t v = storeOf(info[0])->add(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Int64Value());
    return Napi::Number::New(env, static_cast<double>(v));
  });
}

// storePort(id): the port the store listens on or connects to (a server asked for port 0 gets a free one).
Napi::Value StorePort(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    return Napi::Number::New(env, entryOf(info[0]).tcp->getPort());
  });
}

Napi::Value StoreClose(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    StoreEntry entry;
    {
      std::lock_guard<std::mutex> lock(gMutex);
      auto it = gStores.find(idArg(info[0]));
      if (it != gStores.end()) {
        entry = std::move(it->second);
        gStores.erase(it);
      }
    }
    return env.Undefined();  // the store closes here, outside the lock
  });
}

// groupCreate(storeId, rank, size, timeoutMs, interface, hostname) -> id: a Gloo group over the store. Its
// transport binds `interface` if given, else `hostname`'s address if given, else the host's default address.
Napi::Value GroupCreate(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    auto store = storeOf(info[0]);
    const int rank = info[1].As<Napi::Number>().Int32Value();
    const int size = info[2].As<Napi::Number>().Int32Value();
    auto opts = c10d::ProcessGroupGloo::Options::create(msArg(info[3]));
    const std::string iface = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    const std::string host = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
    if (!iface.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    else if (!host.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
    std::lock_guard<std::mutex> lock(gMutex);
    const int64_t id = gNextId++;
    gGroups.emplace(id, group);
    return Napi::Number::New(env, static_cast<double>(id));
  });
}

Napi::Value GroupDestroy(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
    {
      std::lock_guard<std::mutex> lock(gMutex);
      auto it = gGroups.find(idArg(info[0]));
      if (it != gGroups.end()) {
        group = std::move(it->second);
        gGroups.erase(it);
      }
    }
    return env.Undefined();
  });
}

// allReduce(groupId, tensors, op, timeoutMs): in place, every rank ends with the same values.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::vector<at::Tensor> tensors = tensorsArg(info[1], "allReduce");
    allReduceInPlace(idArg(info[0]), tensors, reduceOpOf(info[2]), msArg(info[3]));
    return env.Undefined();
  });
}

// broadcast(groupId, tensors, root, timeoutMs): in place, from rank `root`.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    std::vector<at::Tensor> tensors = tensorsArg(info[1], "broadcast");
    c10d::BroadcastOptions opts;
    opts.rootRank = info[2].As<Napi::Number>().Int64Value();
    opts.timeout = msArg(info[3]);
    auto work = groupOf(idArg(info[0]))->broadcast(tensors, opts);
    work->wait(opts.timeout);
    return env.Undefined();
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    c10d::BarrierOptions opts;
    opts.timeout = msArg(info[1]);
    auto work = groupOf(idArg(info[0]))->barrier(opts);
    work->wait(opts.timeout);
    return env.Undefined();
  });
}

// The sum over ranks as an autograd function: the gradient of every rank's input is the sum over ranks of the
// output gradients (torch.distributed.nn.functional.all_reduce).
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t group, int64_t timeoutMs) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["timeout"] = timeoutMs;
    std::vector<at::Tensor> out{x.clone(at::MemoryFormat::Contiguous)};
    allReduceInPlace(group, out, c10d::ReduceOp::SUM, std::chrono::milliseconds(timeoutMs));
    return out[0];
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    std::vector<at::Tensor> g{grads[0].clone(at::MemoryFormat::Contiguous)};
    allReduceInPlace(ctx->saved_data["group"].toInt(), g, c10d::ReduceOp::SUM, std::chrono::milliseconds(ctx->saved_data["timeout"].toInt()));
    return {g[0], at::Tensor(), at::Tensor()};
  }
};

// allReduceSumDifferentiable(groupId, tensor, timeoutMs) -> a new tensor, the sum over ranks.
Napi::Value AllReduceSumDifferentiable(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const at::Tensor& x = tensorOf(info[1], "allReduceSumDifferentiable");
    return wrapTensor(env, AllReduceSum::apply(x, idArg(info[0]), msArg(info[2]).count()));
  });
}

#else

Napi::Value Unavailable(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    throw Napi::Error::New(env, "this build of the addon has no c10d Gloo support (its headers were not found: on Debian "
                                "`apt-get install libgloo-dev`, then `npm run build:addon`)");
  });
}

#endif

}  // namespace

void initDistributed(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
#ifdef USE_C10D_GLOO
  fn("distStoreCreate", StoreCreate);
  fn("distStoreSet", StoreSet);
  fn("distStoreGet", StoreGet);
  fn("distStoreCheck", StoreCheck);
  fn("distStoreAdd", StoreAdd);
  fn("distStorePort", StorePort);
  fn("distStoreClose", StoreClose);
  fn("distGroupCreate", GroupCreate);
  fn("distGroupDestroy", GroupDestroy);
  fn("distAllReduce", AllReduce);
  fn("distBroadcast", Broadcast);
  fn("distBarrier", Barrier);
  fn("distAllReduceSumDifferentiable", AllReduceSumDifferentiable);
  exports.Set("distributedAvailable", Napi::Boolean::New(env, true));
#else
  for (const char* name : {"distStoreCreate", "distStoreSet", "distStoreGet", "distStoreCheck", "distStoreAdd", "distStorePort", "distStoreClose", "distGroupCreate",
                           "distGroupDestroy", "distAllReduce", "distBroadcast", "distBarrier", "distAllReduceSumDifferentiable"})
    fn(name, Unavailable);
  exports.Set("distributedAvailable", Napi::Boolean::New(env, false));
#endif
}

}  // namespace ssddpm
