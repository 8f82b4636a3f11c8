//! What every benchmark file shares: the broker's allocator and criterion's short defaults.

use std::time::Duration;

use criterion::Criterion;

/// The broker binary's allocator, so that allocation costs here are the broker's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Short defaults keep `cargo bench` to minutes on a 2-core machine; command-line flags such as
/// `--measurement-time` still override them.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}
