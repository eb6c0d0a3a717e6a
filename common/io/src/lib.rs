//! meshcast's one driver loop: it runs any [`Machine`] over a real UDP socket and the real
//! clock, and nothing else in the project waits on a socket.
//!
//! # Layout
//!
//! - [`driver`]: [`run`] — wait for a datagram, a command, the machine's timeout or shutdown;
//!   feed the machine; drain its transmits and events.
//! - [`emulation`]: [`Emulator`] — user-space link delay, jitter, loss, bursts and rate limits
//!   on outgoing datagrams (the kernel here has no netem), plugged in through
//!   [`Hooks::emulator`].
//! - [`socket`]: [`bind_udp`] with receive/send buffers large enough for media bursts.
//! - [`shutdown`]: Ctrl-C / SIGTERM turned into one signal every task can wait on.
//! - [`process`]: children that die with their parent (FFmpeg, players, lab processes).
//! - [`logging`]: tracing set-up shared by the binaries.

pub mod driver;
pub mod emulation;
pub mod logging;
pub mod process;
pub mod shutdown;
pub mod socket;

pub use driver::{DriverStats, Flow, Hooks, run};
pub use emulation::{EmulationStats, Emulator};
pub use meshcast_proto::Machine;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use socket::bind_udp;
