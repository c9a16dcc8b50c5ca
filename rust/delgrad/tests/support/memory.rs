//! Heap counting for the memory bench and test (`#[path]`-included: it installs the global
//! allocator of the binary that includes it), and the wide Yin-Yang networks they measure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::network::Network;
use delgrad::random::RandomState;
use delgrad::train::{LayerSpec, init_network};

/// The system allocator, counting the bytes held now and the most held since the last reset.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = HELD.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(n: usize) {
    HELD.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates two counters besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap held at the peak of `f` beyond what was held before it, and what `f` returned.
pub fn peak_of<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - before, out)
}

/// The 4-`hidden`-3 Yin-Yang network with synaptic delays at tau_m = 2 tau_s (the H30 case of
/// the throughput bench at other widths).
pub fn network(hidden: usize) -> Network {
    let spec = |size: usize, mean: f64, std: f64| LayerSpec {
        tau_m: 2.0,
        tau_s: 1.0,
        theta: 1.0,
        delay_kinds: vec![DelayKind::Synaptic],
        ..LayerSpec::new(size, mean, std)
    };
    let sig = DelayParam::Sigmoid { shift: 0.0, scale: 1.0 };
    // Hidden weights scaled with the width so that the hidden layer keeps spiking.
    let w = 30.0 / hidden as f64;
    let specs = [spec(hidden, w, w), spec(3, 1.0, 1.0)];
    init_network(4, &specs, sig, &mut RandomState::new(0)).expect("a valid network")
}

/// `batch` Yin-Yang samples (repeating the training set) and their labels.
pub fn inputs(batch: usize) -> (Matrix, Vec<usize>) {
    let d = yin_yang(Split::Train);
    let x = encode_times(&d.x, T_EARLY, T_LATE).expect("valid times");
    let n = x.rows();
    let rows: Vec<f64> = (0..batch).flat_map(|b| x.row(b % n).to_vec()).collect();
    let labels = (0..batch).map(|b| d.y[b % n]).collect();
    (Matrix::from_vec("x", batch, 4, rows).expect("rows of 4"), labels)
}
