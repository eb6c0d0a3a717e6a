//! The contract every protocol state machine follows.

use std::net::SocketAddr;
use std::time::Instant;

/// A datagram a machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dst: SocketAddr,
    /// The encoded datagram.
    pub payload: Vec<u8>,
}

/// A sans-IO protocol machine: it never reads a clock, touches a socket or spawns a task.
///
/// # Calling contract
///
/// * Feed it inputs with the `handle_*` methods, passing the current time.
/// * After every `handle_*` call (or a batch of datagrams), drain [`Machine::poll_transmit`] and
///   [`Machine::poll_event`] until they return `None`, then ask [`Machine::poll_timeout`] when
///   to call [`Machine::handle_timeout`] next.
/// * Calling `handle_timeout` early or twice is harmless: timers that are not due do nothing.
/// * Time must never go backwards between calls.
///
/// `common/io` drives machines over real sockets and `common/sim` over a virtual network; both
/// obey this contract and nothing else.
pub trait Machine {
    /// Requests from the application (publish media, watch a channel, …).
    type Command;
    /// Notifications to the application.
    type Event;

    /// A datagram arrived from `from`. Malformed input is counted and dropped, never an error.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    /// The application asks for something.
    fn handle_command(&mut self, now: Instant, command: Self::Command);
    /// The time returned by [`Machine::poll_timeout`] has come (or passed).
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event for the application, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When [`Machine::handle_timeout`] must be called next, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}
