//! Arrivals in time order: the per-sample sort of a layer's inputs (integer keys, then an
//! insertion pass) and each synaptic neuron's own arrivals a_ki = t_i + d_ki.

use crate::solver::Arrival;

/// The arrivals a_ki = t_i + d_ki of neuron k of a synaptic layer (weights `w`, delays `d`,
/// decays `dec` = e^{d_ki/tau_m} when factored) from its inputs `order` sorted by t_i, written
/// in time order to the front of `buf` (as long as `order`); returns their number (inputs with
/// w_ki = 0 are left out). `INSERT`: insertion into place, linear overall when the delays barely
/// reorder the presorted inputs, and branch-predictable for the short rows where it is used;
/// else written as they come (for long rows, which the caller sorts).
#[inline]
pub(super) fn synaptic_arrivals<const INSERT: bool>(
    buf: &mut [Arrival],
    order: &[(f64, f64, usize)],
    w: &[f64],
    d: &[f64],
    dec: Option<&[f64]>,
) -> usize {
    let buf = &mut buf[..order.len()];
    // Rows of one length: one bounds check per input covers all three.
    let d = &d[..w.len()];
    let mut len = 0;
    let mut put = |x: Arrival| {
        let mut j = len;
        if INSERT {
            while j > 0 {
                let before = buf[j - 1];
                if before.a <= x.a {
                    break;
                }
                buf[j] = before;
                j -= 1;
            }
        }
        buf[j] = x;
        len += 1;
    };
    let kept = order.iter().filter(|x| w[x.2] != 0.0);
    let arrival = |t: f64, i: usize, e: f64| Arrival {
        a: t + d[i],
        w: w[i],
        e,
    };
    match dec {
        Some(dec) => {
            let dec = &dec[..w.len()];
            kept.for_each(|&(t, e, i)| put(arrival(t, i, e * dec[i])))
        }
        None => kept.for_each(|&(t, _, i)| put(arrival(t, i, 0.0))),
    }
    len
}

/// Rows longer than this are sorted with the standard library's sort.
pub(super) const INSERTION_MAX: usize = 32;

/// Most index bits packed into the low bits of a sort key (wider layers use the standard sort).
const MAX_INDEX_BITS: u32 = 20;

/// Order-preserving map of a finite time to an integer: a < b implies key(a) < key(b), except
/// -0 and +0 (keys apart, values equal). Integers sort much faster than floats with payloads.
#[inline]
fn order_key(t: f64) -> u64 {
    let bits = t.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// Fills `out` with (a_i, 0, i) for the inputs i with finite `t_in[i]`, in ascending order of
/// their arrival times a_i = `arrival(i)` (finite for those).
///
/// Many inputs are sorted as integers: the order key of a_i with its lowest bits replaced by i
/// (`keys` is scratch). Cutting those bits only ties times within a relative 2^-32 of each other,
/// so the sorted keys leave nothing but such near-ties out of order, and one insertion pass over
/// the exact times (linear, as they are few) finishes the job.
pub(crate) fn sorted_arrivals(
    t_in: &[f64],
    arrival: impl Fn(usize) -> f64,
    keys: &mut Vec<u64>,
    out: &mut Vec<(f64, f64, usize)>,
) {
    let finite = (0..t_in.len()).filter(|&i| t_in[i].is_finite());
    let index_bits = usize::BITS - t_in.len().saturating_sub(1).leading_zeros();
    out.clear();
    if t_in.len() <= 8 || index_bits > MAX_INDEX_BITS {
        out.extend(finite.map(|i| (arrival(i), 0.0, i)));
        if out.len() <= 8 {
            insertion_sort(out);
        } else {
            out.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
        }
        return;
    }
    let mask = (1u64 << index_bits) - 1;
    keys.clear();
    keys.extend(finite.map(|i| (order_key(arrival(i)) & !mask) | i as u64));
    keys.sort_unstable();
    out.extend(keys.iter().map(|&k| {
        let i = (k & mask) as usize;
        (arrival(i), 0.0, i)
    }));
    insertion_sort(out);
}

/// Sorts (time, factor, index) triples by time in place: quadratic in general, linear for
/// nearly sorted ones. The times are finite, so plain comparisons order them.
fn insertion_sort(v: &mut [(f64, f64, usize)]) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1].0 > x.0 {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `sorted_arrivals` must produce: every finite input once, arrivals non-decreasing.
    fn check(t_in: &[f64], axo: Option<&[f64]>) {
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let arrival = |i: usize| axo.map_or(t_in[i], |d| t_in[i] + d[i]);
        sorted_arrivals(t_in, arrival, &mut keys, &mut out);
        let mut seen: Vec<usize> = out.iter().map(|x| x.2).collect();
        seen.sort_unstable();
        let finite: Vec<usize> = (0..t_in.len()).filter(|&i| t_in[i].is_finite()).collect();
        assert_eq!(seen, finite);
        for &(a, e, i) in &out {
            let want = axo.map_or(t_in[i], |d| t_in[i] + d[i]);
            assert_eq!(a.to_bits(), want.to_bits(), "input {i}");
            assert_eq!(e, 0.0);
        }
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "{out:?}");
    }

    /// Times from a few bases, each nudged by a few ulps either way: near-ties that the packed
    /// integer keys cannot tell apart, exact ties, silent inputs, signed zeros and negative times.
    fn near_ties(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
        let base = prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(-2.5),
            Just(f64::INFINITY),
            -1e3..1e3f64,
            1e-300..1e-290f64,
        ];
        prop::collection::vec((base, -3i64..=3), n).prop_map(|v| {
            v.into_iter()
                .map(|(b, ulps)| {
                    if !b.is_finite() || b == 0.0 {
                        b
                    } else {
                        f64::from_bits((b.to_bits() as i64 + ulps) as u64)
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn sorted_arrivals_orders_exactly(t in near_ties(0..80), shift in -1.0..4.0f64) {
            check(&t, None);
            let axo: Vec<f64> = (0..t.len()).map(|i| if i % 3 == 0 { 0.0 } else { shift.abs() * i as f64 }).collect();
            check(&t, Some(&axo));
        }
    }

    #[test]
    fn order_key_preserves_the_order_of_finite_times() {
        let mut v = vec![
            -1e300,
            -2.0,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1.0 + f64::EPSILON,
            1e300,
        ];
        let keys: Vec<u64> = v.iter().map(|&t| order_key(t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        v.reverse();
        let mut keys: Vec<u64> = v.iter().map(|&t| order_key(t)).collect();
        keys.sort_unstable();
        assert_eq!(keys[0], order_key(-1e300));
    }
}
