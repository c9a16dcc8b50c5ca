//! The hardware-aware 20(=4x5)-30-3 network of docs/hardware.md, shared by the hardware tests and the
//! benches (`#[path]`-included: Cargo does not build files in `tests/support` on their own).

use delgrad::delay::{DelayKind, DelayParam};
use delgrad::network::Network;
use delgrad::random::RandomState;
use delgrad::train::{LayerSpec, init_network};

/// 20 inputs (4 x 5 copies sharing an axonal delay) -> 30 -> 3, tau_m = tau_s = 1, theta 2.6,
/// weights N(1.0, 0.12) / N(0.075, 0.15), axonal delays 2.0 + 1.5 sigmoid(p), p ~ N(0, 0.5).
pub fn hw_net(seed: u32) -> Network {
    let spec = |size, mean, std, group| LayerSpec {
        tau_m: 1.0,
        tau_s: 1.0,
        theta: 2.6,
        delay_kinds: vec![DelayKind::Axonal],
        delay_group: group,
        delay_init_std: 0.5,
        ..LayerSpec::new(size, mean, std)
    };
    init_network(
        20,
        &[spec(30, 1.0, 0.12, 5), spec(3, 0.075, 0.15, 1)],
        DelayParam::Sigmoid { shift: 2.0, scale: 1.5 },
        &mut RandomState::new(seed),
    )
    .unwrap()
}
