//! The temporal noise and read-out of an emulated chip run ([`NoiseParams`], one list of their
//! names) and the stream ids of every noise effect (docs/hardware.md, "Noise effects").

use crate::error::{Error, Result};

/// One FPGA clock cycle (8 ns at 125 MHz) in model time units of 6 us.
pub const BSS2_TIME_STEP: f64 = 8e-3 / 6.0;
/// Length of one sample slot in model time units (30 tau = 180 us).
pub const BSS2_SLOT: f64 = 30.0;

/// Stream ids of the noise effects (part of every stream key).
pub(super) mod effect {
    pub const THETA_BATCH: u64 = 1;
    pub const THETA_SAMPLE: u64 = 2;
    pub const JITTER: u64 = 3;
    pub const OUTPUT_JITTER: u64 = 4;
    pub const INPUT_LOSS: u64 = 5;
    pub const RECORD_LOSS: u64 = 6;
    pub const STALL: u64 = 7;
    pub const PATTERN: u64 = 8;
}

/// Temporal noise and read-out of a run (model time units). [`NoiseParams::bss2`] gives the
/// BrainScaleS-2 values of docs/hardware.md, [`NoiseParams::ideal`] switches everything off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseParams {
    /// Std of the threshold noise redrawn per run (batch) and neuron (BSS-2: 0.04).
    pub theta_batch_std: f64,
    /// Std of the threshold noise redrawn per sample and neuron (BSS-2: 0, exists but off).
    pub theta_sample_std: f64,
    /// Std of the jitter of every delayed spike arrival (BSS-2: 0.01 = 60 ns).
    pub jitter_std: f64,
    /// Std of the jitter of every output spike (BSS-2: 0).
    pub output_jitter_std: f64,
    /// Clock period of input playback and timestamps; 0 = continuous (BSS-2: 8 ns = 1/750).
    pub time_step: f64,
    /// Sample slot length: spikes at t >= slot are lost to the sample; +inf = unlimited (BSS-2: 30).
    pub slot: f64,
    /// Probability that an input or recorded spike event is lost on the link (default 0).
    pub event_loss: f64,
    /// Probability that a run stalls (default 0).
    pub stall_prob: f64,
}

impl Default for NoiseParams {
    fn default() -> Self {
        Self::bss2()
    }
}

impl NoiseParams {
    /// The BrainScaleS-2 values of docs/hardware.md (event loss and stalls off).
    pub fn bss2() -> Self {
        NoiseParams {
            theta_batch_std: 0.04,
            theta_sample_std: 0.0,
            jitter_std: 0.01,
            output_jitter_std: 0.0,
            time_step: BSS2_TIME_STEP,
            slot: BSS2_SLOT,
            event_loss: 0.0,
            stall_prob: 0.0,
        }
    }

    /// No noise, continuous time, no slot limit: the ideal model.
    pub fn ideal() -> Self {
        NoiseParams {
            theta_batch_std: 0.0,
            theta_sample_std: 0.0,
            jitter_std: 0.0,
            output_jitter_std: 0.0,
            time_step: 0.0,
            slot: f64::INFINITY,
            event_loss: 0.0,
            stall_prob: 0.0,
        }
    }

    /// The parameters by name, for setting them (the one list of the names, in the order of
    /// [`NoiseParams::values`]).
    pub fn fields_mut(&mut self) -> [(&'static str, &mut f64); 8] {
        [
            ("theta_batch_std", &mut self.theta_batch_std),
            ("theta_sample_std", &mut self.theta_sample_std),
            ("jitter_std", &mut self.jitter_std),
            ("output_jitter_std", &mut self.output_jitter_std),
            ("time_step", &mut self.time_step),
            ("slot", &mut self.slot),
            ("event_loss", &mut self.event_loss),
            ("stall_prob", &mut self.stall_prob),
        ]
    }

    /// The parameters as (name, value) pairs.
    pub fn values(&self) -> [(&'static str, f64); 8] {
        let mut copy = *self;
        copy.fields_mut().map(|(name, v)| (name, *v))
    }

    /// The names of the parameters.
    pub fn names() -> [&'static str; 8] {
        Self::ideal().values().map(|(name, _)| name)
    }

    /// Checks every field (stds and the time step finite and >= 0, slot > 0, probabilities in
    /// [0, 1]); errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in self.values() {
            match name {
                "slot" if v.is_nan() || v <= 0.0 => {
                    return Err(Error::value(
                        name,
                        format!("expected a number > 0 (inf = unlimited), got {v}"),
                    ));
                }
                "event_loss" | "stall_prob" if !(0.0..=1.0).contains(&v) => {
                    return Err(Error::value(name, format!("expected a probability in [0, 1], got {v}")));
                }
                "slot" | "event_loss" | "stall_prob" => {}
                _ if !(v.is_finite() && v >= 0.0) => {
                    return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_field() {
        let mut n = NoiseParams::bss2();
        n.validate().unwrap();
        NoiseParams::ideal().validate().unwrap();
        n.jitter_std = -1.0;
        assert!(n.validate().unwrap_err().to_string().contains("jitter_std"));
        let mut n = NoiseParams::bss2();
        n.event_loss = 1.5;
        assert!(n.validate().unwrap_err().to_string().contains("event_loss"));
        let mut n = NoiseParams::bss2();
        n.slot = 0.0;
        assert!(n.validate().unwrap_err().to_string().contains("slot"));
    }

    #[test]
    fn names_address_their_fields() {
        let mut n = NoiseParams::ideal();
        for (i, (_, v)) in n.fields_mut().into_iter().enumerate() {
            *v = i as f64;
        }
        assert_eq!(n.jitter_std, 2.0);
        assert_eq!(n.stall_prob, 7.0);
        assert_eq!(NoiseParams::names()[5], "slot");
    }
}
