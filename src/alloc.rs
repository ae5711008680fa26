//! The C allocator under libtorch's CPU tensors. glibc returns every freed block above
//! its mmap threshold (128 KiB at first) to the kernel, so each training step maps, faults
//! in and unmaps its activations again: about 8,000 page faults per ResNet-20 step at
//! batch 128 here. Keeping blocks of up to 32 MiB on the heap and never trimming it lets
//! the steps reuse the same pages (about 85 faults per step), for the same peak memory.

/// Largest block glibc will keep on its heap (its upper bound for the mmap threshold on
/// 64-bit systems).
pub const MMAP_THRESHOLD: i32 = 32 << 20;

/// Tunes glibc's malloc as described above; call it first thing in `main`. Does nothing
/// when the user set `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` (theirs win), or
/// on other C libraries. Returns whether it changed anything.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        {
            return false;
        }
        // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}
