//! Settings of the allocator the binaries use (mimalloc, chosen in
//! `main.rs` and by the benches).

/// `mi_option_purge_delay` in mimalloc.h's option enum (the one before
/// `mi_option_use_numa_nodes`, which the Rust binding names as 16).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse instead of handing it back to the system
/// after 10 ms (mimalloc's default). The importer and the indexer free on
/// one thread what another allocated, so pages empty and fill again all the
/// time; returning them made the kernel zero and map them again at every
/// reuse. Measured on a 1M-message import with indexing: 31 instead of 36
/// CPU-seconds, 17.3 instead of 19.9 s, for about 50 MiB more peak RSS (the
/// process keeps its peak). Call it before the work starts.
#[allow(unsafe_code)] // the project's one unsafe call (lints deny it elsewhere)
pub fn keep_freed_memory() {
    // SAFETY: sets an integer option; mimalloc reads options atomically and
    // accepts a change at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
