//! meshcast's sans-IO core: the wire codec and every protocol state machine.
//!
//! Nothing in this crate reads a clock, touches a socket, spawns a task or draws entropy from
//! the operating system: callers pass the time in, feed datagrams and commands, and drain
//! datagrams, events and the next timeout (see [`Machine`]). `common/io` runs these machines
//! over UDP sockets; `common/sim` runs them on a virtual network where a seed replays a run.
//!
//! # Layout
//!
//! - [`wire`]: byte layout of every datagram, golden-byte tested; decoding never panics.
//! - [`machine`]: the [`Machine`] calling contract shared by every role.
//! - [`reliable`]: per-peer reliable control channel (acks, RTO, backoff, dedup, give-up).
//! - [`link`]: impairment model of one link direction (latency, jitter, loss, bursts, rate).
//! - [`rtt`]: RFC 6298 RTT estimator feeding the RTO and the route metric.
//! - [`node`]: the relay/PoP/server machine: links, flooding, route table, tree, forwarding.
//! - [`playout`]: the viewer's timestamp-based reorder and playout buffer.
//! - [`client`]: the viewer machine: PoP probing and choice, catalogue, watch, media stats.
//! - [`bootstrap`]: the bootstrapper's directory and the joining side's request/retry machine.
//! - [`ts`]: MPEG-TS packet view and the exact continuity checker.
//! - [`stats`]: the viewer KPI recorder (startup, continuity, stalls).
//! - [`rng`]: seeded randomness, one generator per machine.

pub mod bootstrap;
pub mod client;
pub mod link;
pub mod machine;
pub mod node;
pub mod playout;
pub mod reliable;
pub mod rng;
pub mod rtt;
pub mod stats;
pub mod ts;
pub mod wire;

pub use machine::{Machine, Transmit};

/// Tests own the clock: they start from one arbitrary instant and only ever add to it.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
