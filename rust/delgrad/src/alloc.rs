//! Fallible allocation of every buffer whose size comes from the caller (layer sizes, batch
//! sizes, chip resources): the element count is checked arithmetic, the buffer is reserved with
//! `try_reserve_exact`, and a request of [`CHECKED_BYTES`] or more is first compared with the
//! memory the system can still give ([`available_bytes`]). Linux overcommits: a request larger
//! than the free memory would be granted and the process killed when it touches the pages, so
//! it is refused here with an [`Error::Memory`] that names the argument and the bytes needed.

use std::mem::size_of;

use crate::error::{Error, Result};

/// Requests of at least this many bytes (64 MiB) are compared with [`available_bytes`] before
/// they are made; smaller ones rely on `try_reserve_exact` alone (reading the system's memory
/// figures costs a file read).
pub const CHECKED_BYTES: usize = 64 << 20;

/// The number of elements of an array of shape `dims` (their product), or an [`Error::Memory`]
/// naming `arg` when the product does not fit in `usize`.
pub fn count(arg: &str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        Error::memory(
            arg,
            format!("{what} of shape {dims:?} has more elements than an address space holds"),
        )
    })
}

/// `n` copies of `value`; an [`Error::Memory`] naming `arg` (and `what` the buffer is) instead
/// of an abort when the memory cannot be had.
pub fn filled<T: Clone>(arg: &str, what: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, arg, what, n)?;
    v.resize(n, value);
    Ok(v)
}

/// The first `n` items of `items` collected into a vector reserved up front (fallibly, as
/// [`filled`]); `items` must yield at least `n` items.
pub fn collect<T>(arg: &str, what: &str, n: usize, items: impl IntoIterator<Item = T>) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, arg, what, n)?;
    v.extend(items.into_iter().take(n));
    Ok(v)
}

/// Reserves room for `additional` more elements in `v` (exactly), or an [`Error::Memory`]
/// naming `arg`: when [`ensure`] refuses the total or the allocator refuses it.
pub fn reserve<T>(v: &mut Vec<T>, arg: &str, what: &str, additional: usize) -> Result<()> {
    let n = v.len().saturating_add(additional);
    let bytes = ensure::<T>(arg, what, n)?;
    v.try_reserve_exact(additional).map_err(|_| {
        Error::memory(
            arg,
            format!("{what} ({n} values) needs {}; the allocation failed", bytes_text(bytes)),
        )
    })
}

/// The bytes of `n` values of `T`, or an [`Error::Memory`] naming `arg` when they overflow the
/// address space or (from [`CHECKED_BYTES`] on) exceed [`available_bytes`]; checks a request
/// before any of it is made (e.g. every array of a network before the first is drawn).
pub fn ensure<T>(arg: &str, what: &str, n: usize) -> Result<usize> {
    let bytes = n
        .checked_mul(size_of::<T>().max(1))
        .filter(|&b| b <= isize::MAX as usize);
    let Some(bytes) = bytes else {
        return Err(Error::memory(
            arg,
            format!("{what} ({n} values) needs more memory than an address space holds"),
        ));
    };
    if bytes >= CHECKED_BYTES {
        if let Some(free) = available_bytes().filter(|&free| bytes > free) {
            return Err(Error::memory(
                arg,
                format!(
                    "{what} ({n} values) needs {}, more than the {} of memory available",
                    bytes_text(bytes),
                    bytes_text(free)
                ),
            ));
        }
    }
    Ok(bytes)
}

/// `bytes` in the largest binary unit that keeps a number >= 1 (e.g. "29.8 GiB").
pub fn bytes_text(bytes: usize) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The memory the system can still give this process: on Linux `MemAvailable` plus `SwapFree`
/// of `/proc/meminfo` (what can be had without killing a process); None where that is not known
/// (other systems), when the allocator's own refusal is the only check.
pub fn available_bytes() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<usize> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: usize = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        kib.checked_mul(1024)
    };
    Some(field("MemAvailable:")?.saturating_add(field("SwapFree:").unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_checked_products() {
        assert_eq!(count("x", "x", &[3, 4, 5]).unwrap(), 60);
        assert_eq!(count("x", "x", &[]).unwrap(), 1);
        let e = count("layers[0].size", "w", &[1 << 40, 1 << 40]).unwrap_err();
        assert!(matches!(e, Error::Memory { .. }));
        assert!(e.to_string().starts_with("layers[0].size: w of shape"), "{e}");
    }

    #[test]
    fn impossible_requests_are_errors_naming_the_argument() {
        for n in [usize::MAX, usize::MAX / 8, 1 << 61] {
            let e = filled("n", "samples", n, 0.0f64).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("n: samples ("), "{text}");
            assert!(!text.contains("capacity overflow"), "{text}");
        }
        // larger than any memory this machine could have: refused before the allocator is asked
        let e = filled("n", "samples", 1 << 58, 0u8).unwrap_err().to_string();
        assert!(e.contains("256.0 PiB"), "{e}");
    }

    #[test]
    fn small_requests_are_made() {
        assert_eq!(filled("n", "v", 3, 1.5).unwrap(), vec![1.5; 3]);
        assert_eq!(collect("n", "v", 2, 0..5).unwrap(), vec![0, 1]);
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(bytes_text(10), "10 bytes");
        assert_eq!(bytes_text(32_000_000_000), "29.8 GiB");
    }
}
