//! Network initialisation and training (docs/model.md, "Training"): Adam with StepLR on the exact
//! gradients of weights and delay parameters, with the stabilisers of the reference recipe.

mod config;
mod init;
mod report;
mod stabilise;
mod trainer;

pub use config::TrainConfig;
pub use init::{LayerSpec, init_network};
pub use report::{EpochReport, EvalReport, StepReport};
pub use trainer::{Tensor, TensorKind, Trainer};
