//! # delgrad
//!
//! Exact, event-based gradients for training the weights **and transmission delays**
//! of spiking neural networks (DelGrad). Neurons are current-based leaky
//! integrate-and-fire units with exponential synapses that code in the time of their
//! first spike; the forward pass solves for first-spike times in closed form (or by a
//! safeguarded root finder) and the backward pass needs only spike times, so the same
//! gradients train networks in software and on neuromorphic hardware.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod error;
pub mod matrix;

pub use error::{Error, Result};
pub use matrix::Matrix;
pub mod cancel;
pub mod dataset;
pub mod delay;
pub mod forward;
pub mod gradient;
#[cfg(feature = "hardware")]
pub mod hardware;
pub mod kernel;
pub mod lambertw;
pub mod loss;
pub mod network;
pub mod optim;
pub mod parallel;
pub mod random;
pub mod range;
pub mod solver;
pub mod step;
pub mod streams;
pub mod train;
