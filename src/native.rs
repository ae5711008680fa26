//! The safe side of the C++ shim (`csrc/shim.cpp`, compiled by `build.rs` against the
//! libtorch that tch links): what tch's generated bindings leave out.
//!
//! - [`sgd_step`]: SGD over every parameter in one multi-tensor ATen call
//!   (`at::_fused_sgd_`), or four `_foreach_*` calls; [`set_grads_to_none`].
//! - [`OpCounter`]: the top-level ATen calls a piece of code makes, by phase.
//! - [`bf16_autocast`]: convolutions cast their fp32 weights to bf16 inside their own call.
//! - [`set_cudnn_deterministic`].
//! - [`CudaGraph`]: capture and replay of a CUDA graph (only in a build whose libtorch has
//!   CUDA; elsewhere its constructor says why not).
//!
//! Tensors cross as tch's own pointers; the shim never takes ownership of them.

use std::ffi::{c_char, c_int, CStr};
use std::sync::Mutex;

use tch::Tensor;
use torch_sys::C_tensor;

use crate::error::{Error, Result};

#[repr(C)]
struct RcGraph {
    _private: [u8; 0],
}

extern "C" {
    fn rc_free_message(m: *mut c_char);
    fn rc_sgd_step(
        params: *const *mut C_tensor,
        buffers: *const *mut C_tensor,
        n: usize,
        weight_decay: f64,
        momentum: f64,
        lr: *const C_tensor,
        fused: c_int,
    ) -> *mut c_char;
    fn rc_set_grads_to_none(params: *const *mut C_tensor, n: usize);
    fn rc_op_counter_start(names: c_int) -> *mut c_char;
    fn rc_op_counter_phase(phase: c_int);
    fn rc_op_counter_read(out: *mut u64);
    fn rc_op_counter_names() -> *mut c_char;
    fn rc_op_counter_stop();
    fn rc_set_cudnn_deterministic(deterministic: c_int);
    fn rc_autocast_enter(cuda: c_int, saved: *mut c_int);
    fn rc_autocast_exit(cuda: c_int, saved: *const c_int);
    fn rc_autocast_enabled(cuda: c_int) -> c_int;
    fn rc_has_cuda_graphs() -> c_int;
    fn rc_graph_new(device: c_int, out: *mut *mut RcGraph) -> *mut c_char;
    fn rc_graph_free(g: *mut RcGraph);
    fn rc_graph_enter_side_stream(g: *mut RcGraph) -> *mut c_char;
    fn rc_graph_leave_side_stream(g: *mut RcGraph) -> *mut c_char;
    fn rc_graph_capture_begin(g: *mut RcGraph) -> *mut c_char;
    fn rc_graph_capture_end(g: *mut RcGraph) -> *mut c_char;
    fn rc_graph_replay(g: *mut RcGraph) -> *mut c_char;
}

/// The shim's message (if any) as an error; frees it.
fn check(m: *mut c_char) -> Result<()> {
    if m.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string that the shim malloc'ed for us.
    let text = unsafe { CStr::from_ptr(m) }.to_string_lossy().lines().next().unwrap_or("").to_string();
    // SAFETY: freed once, by the shim's allocator.
    unsafe { rc_free_message(m) };
    Err(Error::Native(text))
}

fn pointers<'a>(ts: impl IntoIterator<Item = &'a Tensor>) -> Vec<*mut C_tensor> {
    ts.into_iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
}

/// How [`sgd_step`] updates the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgdKernel {
    /// `at::_fused_sgd_`: one ATen call (CPU and CUDA have the kernel).
    Fused,
    /// `_foreach_add`, `_foreach_mul_`, `_foreach_add_`, `_foreach_addcmul_`: four ATen calls,
    /// on any device.
    Foreach,
}

impl SgdKernel {
    /// The fused kernel where libtorch has one (CPU, CUDA), else the `_foreach_*` ops.
    pub fn for_device(device: tch::Device) -> Self {
        match device {
            tch::Device::Cpu | tch::Device::Cuda(_) => SgdKernel::Fused,
            _ => SgdKernel::Foreach,
        }
    }
}

/// One SGD step (weight decay λ, momentum μ: `(weight_decay, momentum)`, dampening 0, no
/// Nesterov) on the parameters that have a gradient, with `buffers[i]` the momentum of
/// `params[i]` and `lr` a 0-d tensor on the parameters' device:
/// d = g + λp; v ← μv + d; p ← p − η·v. Same update as `torch.optim.SGD`.
pub fn sgd_step(
    params: &[Tensor],
    buffers: &[Tensor],
    (weight_decay, momentum): (f64, f64),
    lr: &Tensor,
    kernel: SgdKernel,
) -> Result<()> {
    assert_eq!(params.len(), buffers.len(), "one momentum buffer per parameter");
    let (p, v) = (pointers(params), pointers(buffers));
    let fused = (kernel == SgdKernel::Fused) as c_int;
    // SAFETY: the pointers are live tch tensors for the duration of the call; the shim
    // reads and updates them in place and keeps no reference.
    check(unsafe { rc_sgd_step(p.as_ptr(), v.as_ptr(), p.len(), weight_decay, momentum, lr.as_ptr(), fused) })
}

/// Drops the gradients of `params` (`zero_grad(set_to_none=True)`), with no ATen call.
pub fn set_grads_to_none(params: &[Tensor]) {
    let p = pointers(params);
    // SAFETY: live tch tensors; only their autograd metadata's gradient is reset.
    unsafe { rc_set_grads_to_none(p.as_ptr(), p.len()) }
}

/// cuDNN's deterministic algorithms with its benchmark search off (`true`), or the
/// fastest algorithms found by timing (`false`).
pub fn set_cudnn_deterministic(deterministic: bool) {
    // SAFETY: sets two flags of libtorch's global context.
    unsafe { rc_set_cudnn_deterministic(deterministic as c_int) }
}

/// Runs `f` with libtorch's bf16 autocast on for `device`'s type (no cast cache), then
/// restores the previous state. Convolutions and matrix products then take fp32 weights and
/// cast them inside their own ATen call; nothing else changes type.
pub fn bf16_autocast<T>(device: tch::Device, f: impl FnOnce() -> T) -> T {
    let cuda = device.is_cuda() as c_int;
    let mut saved = [0 as c_int; 3];
    // SAFETY: sets thread-local autocast flags; `saved` has the three slots the shim fills.
    unsafe { rc_autocast_enter(cuda, saved.as_mut_ptr()) };
    struct Restore(c_int, [c_int; 3]);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores what rc_autocast_enter saved, on the same thread.
            unsafe { rc_autocast_exit(self.0, self.1.as_ptr()) }
        }
    }
    let _restore = Restore(cuda, saved);
    f()
}

/// Whether autocast is on for `device`'s type on this thread.
pub fn autocast_enabled(device: tch::Device) -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { rc_autocast_enabled(device.is_cuda() as c_int) != 0 }
}

/// Whether this build can capture CUDA graphs (its libtorch has CUDA).
pub fn has_cuda_graphs() -> bool {
    // SAFETY: no arguments, no state.
    unsafe { rc_has_cuda_graphs() != 0 }
}

/// How many phases [`OpCounter`] keeps apart (their meaning is the caller's).
pub const OP_PHASE_COUNT: usize = 4;

/// Counts the top-level ATen calls (those made while no other ATen op runs on the thread)
/// on every thread, each into the phase set last. One counter at a time in a process.
pub struct OpCounter {
    _only_one: std::sync::MutexGuard<'static, ()>,
}

static COUNTER: Mutex<()> = Mutex::new(());

impl OpCounter {
    /// Starts counting from zero, in phase 0; `names` also tallies operator names.
    pub fn start(names: bool) -> Result<Self> {
        let guard = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: registers a global RecordFunction callback (once) and clears the counts.
        check(unsafe { rc_op_counter_start(names as c_int) })?;
        Ok(OpCounter { _only_one: guard })
    }

    /// Later calls count into `phase` (below [`OP_PHASE_COUNT`]).
    pub fn phase(&self, phase: usize) {
        // SAFETY: an atomic store; out-of-range values are ignored by the shim.
        unsafe { rc_op_counter_phase(phase as c_int) }
    }

    /// The counts so far, by phase.
    pub fn read(&self) -> [u64; OP_PHASE_COUNT] {
        let mut out = [0u64; OP_PHASE_COUNT];
        // SAFETY: the shim writes exactly four counts.
        unsafe { rc_op_counter_read(out.as_mut_ptr()) };
        out
    }

    /// The calls so far by (phase, operator name), when started with `names`.
    pub fn names(&self) -> Vec<(usize, String, u64)> {
        // SAFETY: a malloc'ed NUL-terminated string, freed below.
        let m = unsafe { rc_op_counter_names() };
        if m.is_null() {
            return Vec::new();
        }
        let text = unsafe { CStr::from_ptr(m) }.to_string_lossy().into_owned();
        unsafe { rc_free_message(m) };
        text.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.parse().ok()?, f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for OpCounter {
    fn drop(&mut self) {
        // SAFETY: removes the callback registered by `start`.
        unsafe { rc_op_counter_stop() }
    }
}

/// A CUDA graph with its own side stream: warm up and capture on the side stream, then
/// replay on the current one.
pub struct CudaGraph {
    ptr: *mut RcGraph,
}

impl CudaGraph {
    /// A graph for CUDA device `device`; an error in a build without CUDA.
    pub fn new(device: usize) -> Result<Self> {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the shim writes a new graph into `ptr` or returns a message.
        check(unsafe { rc_graph_new(device as c_int, &mut ptr) })?;
        Ok(CudaGraph { ptr })
    }

    /// Runs `f` on the side stream (after a device synchronisation), then returns to the
    /// current stream once the side stream is done.
    pub fn on_side_stream<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        // SAFETY: `ptr` is a live graph owned by `self`.
        check(unsafe { rc_graph_enter_side_stream(self.ptr) })?;
        let out = f(self);
        let left = check(unsafe { rc_graph_leave_side_stream(self.ptr) });
        let out = out?;
        left.map(|()| out)
    }

    /// Captures what `f` issues (call inside [`Self::on_side_stream`]).
    pub fn capture<T>(&mut self, f: impl FnOnce() -> T) -> Result<T> {
        // SAFETY: `ptr` is live; begin and end are paired here.
        check(unsafe { rc_graph_capture_begin(self.ptr) })?;
        let out = f();
        check(unsafe { rc_graph_capture_end(self.ptr) })?;
        Ok(out)
    }

    /// Replays the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: `ptr` is a live, captured graph.
        check(unsafe { rc_graph_replay(self.ptr) })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from rc_graph_new and is freed once.
        unsafe { rc_graph_free(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn counter_counts_top_level_calls_by_phase() {
        let a = Tensor::ones([4], (Kind::Float, Device::Cpu));
        let c = OpCounter::start(true).unwrap();
        c.phase(1);
        let _ = &a + &a; // add
        c.phase(2);
        let _ = a.relu(); // relu
        let _ = a.sum(Kind::Float); // sum
        let counts = c.read();
        assert_eq!(counts, [0, 1, 2, 0], "{:?}", c.names());
        assert!(c.names().iter().any(|(p, n, k)| *p == 1 && n == "aten::add" && *k == 1), "{:?}", c.names());
    }

    #[test]
    fn graphs_need_cuda() {
        if tch::Cuda::is_available() {
            eprintln!("skipped: a CUDA device is present (this test is for machines without one)");
            return;
        }
        let e = CudaGraph::new(0).err().map(|e| e.to_string()).expect("no graph without a CUDA device");
        assert!(has_cuda_graphs() || e.contains("no CUDA"), "{e}");
    }
}
