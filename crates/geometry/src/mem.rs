//! Large zeroed buffers that ask the kernel for transparent huge pages: a
//! fresh buffer of tens of MiB otherwise takes one page fault per 4 KiB.

use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implementors must be valid when every byte is zero.
pub(crate) unsafe trait Zeroable {}

// SAFETY: integers, floats and arrays of them are valid as zero bytes.
unsafe impl Zeroable for u32 {}
unsafe impl Zeroable for [u32; 3] {}
unsafe impl Zeroable for [f64; 3] {}
// SAFETY: atomics have the layout of their plain type.
unsafe impl Zeroable for std::sync::atomic::AtomicBool {}
unsafe impl Zeroable for std::sync::atomic::AtomicU32 {}

/// Buffers from this size on ask for huge pages (2 MiB each on x86-64).
const HUGE_MIN: usize = 4 << 20;

/// `n` zeroed values; from [`HUGE_MIN`] bytes on, backed by huge pages where
/// the kernel allows it (Linux `madvise(MADV_HUGEPAGE)`; a hint only).
pub(crate) fn zeroed<T: Zeroable>(n: usize) -> Vec<T> {
    let layout = Layout::array::<T>(n).expect("buffer size");
    if layout.size() == 0 {
        return Vec::new();
    }
    // SAFETY: the layout's size is not zero.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    advise_huge(ptr, layout.size());
    // SAFETY: allocated by the global allocator with the layout of a
    // `Vec<T>` of capacity n, and all n values (zero bytes) are valid.
    unsafe { Vec::from_raw_parts(ptr.cast::<T>(), n, n) }
}

/// Asks for huge pages on the whole 4 KiB pages of `len` bytes at `ptr`.
fn advise_huge(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    if len >= HUGE_MIN {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) & !(PAGE - 1);
        if end > start {
            // SAFETY: the range lies inside our own allocation, and the advice
            // changes no contents (a failure only leaves small pages).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}
