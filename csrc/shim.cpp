// The project's only native code: what tch cannot reach because its generator skips it.
//
//   - SGD as multi-tensor ops: `at::_fused_sgd_` (one ATen call for every parameter, the
//     learning rate a device tensor), or the `_foreach_*` ops where no fused kernel exists;
//     gradients set to none without an ATen call;
//   - an op counter: a RecordFunction callback that counts the top-level ATen calls (those
//     made while no other ATen op runs on that thread: what torch.profiler shows as `aten::`
//     events without an `aten::` ancestor), split by a phase the caller sets;
//   - bf16 autocast for a device type, so that a convolution casts its fp32 weight inside its
//     own ATen call (one top-level call instead of two);
//   - cuDNN's determinism switch;
//   - CUDA graphs (`at::cuda::CUDAGraph`) and a side stream for warm-up and capture,
//     compiled only where libtorch has CUDA (RESNET_CIFAR_SHIM_CUDA, set by build.rs).
//
// Tensors arrive as tch's own pointers (`torch::Tensor*`, tch's C_tensor). Every function
// that can fail returns NULL on success or a malloc'ed message that the caller frees with
// `rc_free_message`; no C++ exception crosses into Rust. The safe Rust side is src/native.rs.

#include <torch/torch.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#ifdef RESNET_CIFAR_SHIM_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

char* message(const std::string& s) {
    char* m = static_cast<char*>(std::malloc(s.size() + 1));
    if (m != nullptr) std::memcpy(m, s.c_str(), s.size() + 1);
    return m;
}

template <typename F>
char* guarded(F&& f) {
    try {
        f();
        return nullptr;
    } catch (const c10::Error& e) {
        return message(e.what_without_backtrace());
    } catch (const std::exception& e) {
        return message(e.what());
    }
}

std::vector<at::Tensor> tensors(at::Tensor* const* ts, size_t n) {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.push_back(*ts[i]);
    return v;
}

}  // namespace

extern "C" {

void rc_free_message(char* m) { std::free(m); }

// ---- SGD --------------------------------------------------------------------------------

// One SGD step with momentum (dampening 0, no Nesterov) over the parameters that have a
// gradient: d = g + λp; v ← μv + d; p ← p − η·v, with η the 0-d tensor `lr` on the
// parameters' device. `fused`: `at::_fused_sgd_` (1 ATen call); else the `_foreach_*` ops
// (4 ATen calls). Parameters without a gradient are skipped, with their buffers.
char* rc_sgd_step(at::Tensor* const* params, at::Tensor* const* buffers, size_t n, double weight_decay,
                  double momentum, const at::Tensor* lr, int fused) {
    return guarded([&] {
        at::NoGradGuard no_grad;
        std::vector<at::Tensor> ps, gs, vs;
        ps.reserve(n);
        gs.reserve(n);
        vs.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            const at::Tensor& g = params[i]->grad();
            if (!g.defined()) continue;
            ps.push_back(*params[i]);
            gs.push_back(g);
            vs.push_back(*buffers[i]);
        }
        if (ps.empty()) return;
        if (fused) {
            at::_fused_sgd_(ps, gs, vs, weight_decay, momentum, *lr, /*dampening=*/0.0, /*nesterov=*/false,
                            /*maximize=*/false, /*is_first_step=*/false);
            return;
        }
        // torch.optim.SGD(foreach=True)'s order of operations, the lr as a tensor.
        auto d = weight_decay != 0.0 ? at::_foreach_add(gs, ps, weight_decay) : gs;
        at::_foreach_mul_(vs, momentum);
        at::_foreach_add_(vs, d);
        std::vector<at::Tensor> lrs(ps.size(), *lr);
        at::_foreach_addcmul_(ps, vs, lrs, -1.0);
    });
}

// Drops the gradients of `params` (PyTorch's zero_grad(set_to_none=True)): no ATen call.
void rc_set_grads_to_none(at::Tensor* const* params, size_t n) {
    for (size_t i = 0; i < n; ++i) params[i]->mutable_grad().reset();
}

// ---- The op counter ------------------------------------------------------------------------

namespace {
constexpr int kPhases = 4;
std::atomic<uint64_t> g_counts[kPhases];
std::atomic<int> g_phase{0};
std::atomic<bool> g_names_on{false};
std::mutex g_names_mutex;
std::map<std::string, uint64_t> g_names[kPhases];
thread_local int t_depth = 0;
std::optional<at::CallbackHandle> g_handle;

// Only ATen operators count (`aten::…`); other ranges (autograd's per-node
// `evaluate_function: …`, user scopes) are transparent, as in torch.profiler's tree.
bool is_aten(const at::RecordFunction& fn) { return std::strncmp(fn.name(), "aten::", 6) == 0; }

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
    if (!is_aten(fn)) return nullptr;
    if (t_depth++ == 0) {
        int phase = g_phase.load(std::memory_order_relaxed);
        g_counts[phase].fetch_add(1, std::memory_order_relaxed);
        if (g_names_on.load(std::memory_order_relaxed)) {
            std::lock_guard<std::mutex> lock(g_names_mutex);
            g_names[phase][fn.name()] += 1;
        }
    }
    return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
    if (is_aten(fn)) --t_depth;
}
}  // namespace

// Starts counting (from zero) the top-level ATen calls on every thread, in phase 0;
// `names`: also tally them by operator name.
char* rc_op_counter_start(int names) {
    return guarded([&] {
        for (auto& c : g_counts) c.store(0);
        {
            std::lock_guard<std::mutex> lock(g_names_mutex);
            for (auto& m : g_names) m.clear();
        }
        g_phase.store(0);
        g_names_on.store(names != 0);
        if (!g_handle) {
            g_handle = at::addGlobalCallback(
                at::RecordFunctionCallback(on_enter, on_exit).scopes({at::RecordScope::FUNCTION}).needsInputs(false));
        }
    });
}

// The phase (0..3) that later calls count into.
void rc_op_counter_phase(int phase) {
    if (phase >= 0 && phase < kPhases) g_phase.store(phase);
}

// Copies the four counts into `out`.
void rc_op_counter_read(uint64_t* out) {
    for (int i = 0; i < kPhases; ++i) out[i] = g_counts[i].load();
}

// The tally by name as "phase\tname\tcount\n" lines (malloc'ed; free with rc_free_message).
char* rc_op_counter_names() {
    std::lock_guard<std::mutex> lock(g_names_mutex);
    std::string s;
    for (int p = 0; p < kPhases; ++p)
        for (const auto& [name, count] : g_names[p])
            s += std::to_string(p) + "\t" + name + "\t" + std::to_string(count) + "\n";
    return message(s);
}

// Stops counting.
void rc_op_counter_stop() {
    if (g_handle) {
        at::removeCallback(*g_handle);
        g_handle.reset();
    }
}

// ---- Autocast ----------------------------------------------------------------------------

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}  // namespace

// Turns bf16 autocast on for the CPU (`cuda` 0) or CUDA (1), without its cast cache (each
// weight is cast once per forward anyway, and a cache would outlive the SGD update);
// writes the previous state into `saved` (3 ints) for rc_autocast_exit.
void rc_autocast_enter(int cuda, int* saved) {
    auto d = device_type(cuda);
    saved[0] = at::autocast::is_autocast_enabled(d);
    saved[1] = static_cast<int>(at::autocast::get_autocast_dtype(d));
    saved[2] = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(d, true);
    at::autocast::set_autocast_dtype(d, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::increment_nesting();
}

// Restores the state that rc_autocast_enter saved.
void rc_autocast_exit(int cuda, const int* saved) {
    auto d = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(d, saved[0] != 0);
    at::autocast::set_autocast_dtype(d, static_cast<at::ScalarType>(saved[1]));
    at::autocast::set_autocast_cache_enabled(saved[2] != 0);
}

// Whether autocast is on for the CPU (0) or CUDA (1) on this thread.
int rc_autocast_enabled(int cuda) { return at::autocast::is_autocast_enabled(device_type(cuda)); }

// ---- cuDNN -------------------------------------------------------------------------------

// cuDNN deterministic algorithms and no benchmark search (`deterministic` != 0), or back.
void rc_set_cudnn_deterministic(int deterministic) {
    at::globalContext().setDeterministicCuDNN(deterministic != 0);
    at::globalContext().setBenchmarkCuDNN(deterministic == 0);
}

// ---- CUDA graphs -----------------------------------------------------------------------------

// Whether this shim was built with CUDA graphs.
int rc_has_cuda_graphs() {
#ifdef RESNET_CIFAR_SHIM_CUDA
    return 1;
#else
    return 0;
#endif
}

#ifdef RESNET_CIFAR_SHIM_CUDA
// (Streams are switched with c10's exported functions rather than its guards, whose
// inline code would tie this file to the CUDA runtime library.)
struct RcGraph {
    at::cuda::CUDAGraph graph;
    c10::DeviceIndex device;
    c10::cuda::CUDAStream side;
    std::optional<c10::cuda::CUDAStream> before;
    explicit RcGraph(c10::DeviceIndex d) : device(d), side(c10::cuda::getStreamFromPool(false, d)) {}
};
#else
struct RcGraph {};
#endif

// A graph for `device` with its own side stream, or a message (no CUDA, bad device).
char* rc_graph_new(int device, RcGraph** out) {
    *out = nullptr;
#ifdef RESNET_CIFAR_SHIM_CUDA
    return guarded([&] { *out = new RcGraph(static_cast<c10::DeviceIndex>(device)); });
#else
    (void)device;
    return message("this build's libtorch has no CUDA: CUDA graphs are not available");
#endif
}

void rc_graph_free(RcGraph* g) { delete g; }

#ifdef RESNET_CIFAR_SHIM_CUDA
// Work issued from here on goes to the side stream, after all that the device holds (a
// device synchronisation: this happens once, for warm-up and capture, never per step).
char* rc_graph_enter_side_stream(RcGraph* g) {
    return guarded([&] {
        c10::cuda::set_device(g->device);
        c10::cuda::device_synchronize();
        g->before = c10::cuda::getCurrentCUDAStream(g->device);
        c10::cuda::setCurrentCUDAStream(g->side);
    });
}

// Back to the stream from before, once the side stream's work is done.
char* rc_graph_leave_side_stream(RcGraph* g) {
    return guarded([&] {
        c10::cuda::device_synchronize();
        if (g->before) c10::cuda::setCurrentCUDAStream(*g->before);
        g->before.reset();
    });
}

// Starts capturing the side stream's work (call between enter and leave). The default
// CUDA generator is registered, so random ops in the graph draw fresh numbers on each
// replay from the generator's seed and offset at that time.
char* rc_graph_capture_begin(RcGraph* g) { return guarded([&] { g->graph.capture_begin(); }); }

char* rc_graph_capture_end(RcGraph* g) { return guarded([&] { g->graph.capture_end(); }); }

// Replays the captured work on the current stream.
char* rc_graph_replay(RcGraph* g) { return guarded([&] { g->graph.replay(); }); }
#else
// Without CUDA no graph exists (rc_graph_new refuses), so these are never reached.
char* rc_graph_enter_side_stream(RcGraph*) { return message("no CUDA"); }
char* rc_graph_leave_side_stream(RcGraph*) { return message("no CUDA"); }
char* rc_graph_capture_begin(RcGraph*) { return message("no CUDA"); }
char* rc_graph_capture_end(RcGraph*) { return message("no CUDA"); }
char* rc_graph_replay(RcGraph*) { return message("no CUDA"); }
#endif

}  // extern "C"
