//! Seeds for simulation tests: a fixed list by default, one chosen seed with `SIM_SEED`, and a
//! replay hint printed when a seeded run fails.

/// The seeds to run: `SIM_SEED` if set (one run), else `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => defaults.to_vec(),
    }
}

/// Prints how to replay `seed` if the test panics while this guard is alive.
#[derive(Debug)]
pub struct ReplayHint {
    seed: u64,
    command: String,
}

impl ReplayHint {
    /// A hint for `seed`; `command` is what reruns the test, e.g.
    /// `cargo test -p meshcast-sim --test mesh50 -- tree_is_acyclic`.
    pub fn new(seed: u64, command: impl Into<String>) -> Self {
        Self {
            seed,
            command: command.into(),
        }
    }
}

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nsimulation failed with seed {seed}; replay with:\n    SIM_SEED={seed} {cmd}\n",
                seed = self.seed,
                cmd = self.command
            );
        }
    }
}
