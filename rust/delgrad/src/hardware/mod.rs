//! The emulated BrainScaleS-2 (BSS-2) chip (docs/hardware.md): the ideal model of docs/model.md
//! plus the chip's imperfections, each a switchable parameter; the chip's weight and delay grid;
//! chip-in-the-loop training on the emulated chip. Compiled with the cargo feature `hardware`.
//!
//! The noisy forward pass ([`noisy_forward`]), per run (one batch = one spike train on the chip)
//! with key (seed, counter), sample b, layer l, neuron k and input channel i, all in model time
//! units (1 unit = tau = 6 us on BSS-2):
//!
//! - input channels: the network input j is fed `repeat` times (channels j*repeat .. (j+1)*repeat);
//!   each input event is played at the FPGA clock, t_i = dt round(t_i / dt), and lost with
//!   probability `event_loss` (then +inf);
//! - thresholds: theta_k = theta_k^nominal + o_k + n_k + m_bk with the fixed-pattern offset o_k
//!   (from a [`LayerPattern`], drawn once per chip), n_k ~ N(0, theta_batch_std) redrawn per run
//!   and m_bk ~ N(0, theta_sample_std) per sample (clamped to >= 1e-9);
//! - arrivals: a_ki = t_i + d_ki + j, j ~ N(0, jitter_std) drawn once per delayed spike: per
//!   (sample, delay group) for axonal delays (one delay unit drives all copies of its source), per
//!   (sample, synapse) when the layer has synaptic or dendritic delays (one delay element each);
//!   undelayed arrivals are not jittered;
//! - weights: w_ki g_i^+ for w_ki > 0 and w_ki g_i^- for w_ki < 0 with the gains of the excitatory
//!   and inhibitory synapse rows of input i (fixed pattern; the caller quantises w);
//! - the neuron: time constants tau_m,k and tau_s,k of the pattern (mismatch leaves the closed-form
//!   regimes: the general-ratio scan of `solver` tests each interval in O(1) and solves only the
//!   crossing one to machine precision);
//! - output: t_k + N(0, output_jitter_std); a spike at or after the end of the sample slot
//!   (t_k >= slot) is not part of this sample (+inf). Later layers see these on-chip times;
//! - recording: the host reads t_k quantised down to the clock, dt floor(t_k / dt); each recorded
//!   event is lost with probability `event_loss`;
//! - stalls: with probability `stall_prob` per run the FPGA stalls at a uniform sample s: samples
//!   s.. of the run record nothing (the run's `stalled_from` is s).
//!
//! Every random number comes from a [`Stream`](crate::streams::Stream) keyed by (seed, counter, sample, layer, effect), so
//! results do not depend on the thread count. With [`NoiseParams::ideal`] and no pattern the result
//! equals `forward::forward`: bit for bit for layers without synaptic delays (the hardware's), to
//! rounding after a synaptic layer (where `forward` takes the next layer's factors from the scan).

mod chip_loop;
mod grid;
mod neurons;
mod noise;
mod pattern;
mod run;

pub use chip_loop::{EmulatedEpoch, Emulation, GradientWeights, HostRecipe};
pub use grid::{Grid, changed_entries, changed_in};
pub use noise::{BSS2_SLOT, BSS2_TIME_STEP, NoiseParams};
pub use pattern::{ChipPattern, LayerPattern, MAX_CIRCUITS, PatternParams};
pub use run::{HwRun, noisy_forward};
