//! The driver loop.
//!
//! ```text
//! loop {
//!     drain transmits → (emulator →) socket, events → hooks; send emulated datagrams now due
//!     wait for: datagram | command | machine timeout | hook tick | emulator deadline | shutdown
//!     feed it to the machine (datagrams in batches of up to 64 already queued)
//! }
//! ```
//!
//! Link emulation is the hooks' business ([`Hooks::emulator`]): they own the [`Emulator`] and
//! may change it at run time (on a tick). Without one, or while it is idle, transmits go
//! straight to the socket as before. At shutdown, datagrams still held by the emulator are
//! dropped: a process that stops, stops sending.

use crate::emulation::Emulator;
use crate::shutdown::Shutdown;
use meshcast_proto::{Machine, Transmit};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Return from [`run`].
    Stop,
}

/// What the application does around the machine.
pub trait Hooks<M: Machine> {
    /// An event from the machine.
    fn on_event(&mut self, machine: &mut M, now: Instant, event: M::Event) -> Flow {
        let _ = (machine, now, event);
        Flow::Continue
    }

    /// Called every [`Hooks::tick_interval`] (stats files, GUI snapshots, deadlines).
    fn on_tick(&mut self, machine: &mut M, now: Instant) -> Flow {
        let _ = (machine, now);
        Flow::Continue
    }

    /// How often [`Hooks::on_tick`] runs; `None` never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// The link emulator every outgoing datagram passes through, if any. Return `None` while
    /// it has nothing to do ([`Emulator::is_active`]) to keep the plain send path.
    fn emulator(&mut self) -> Option<&mut Emulator> {
        None
    }
}

/// Hooks that do nothing.
impl<M: Machine> Hooks<M> for () {}

/// Socket-level counters of one driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Sends that failed (unreachable destination, buffer full…).
    pub send_errors: u64,
    /// Receive errors (ICMP errors reported on the socket and the like).
    pub recv_errors: u64,
}

const BATCH: usize = 64;
const RECV_BUF: usize = 2048;

/// Runs `machine` on `socket` until shutdown, a hook says stop, or the command channel closes
/// with `stop_when_commands_close`. Outgoing datagrams pass through the hooks' link emulator
/// when they have an active one ([`Hooks::emulator`]).
pub async fn run<M, H>(
    machine: &mut M,
    socket: &UdpSocket,
    mut commands: mpsc::Receiver<M::Command>,
    hooks: &mut H,
    mut shutdown: Shutdown,
) -> DriverStats
where
    M: Machine,
    H: Hooks<M>,
{
    let mut stats = DriverStats::default();
    let mut buf = vec![0u8; RECV_BUF];
    let mut commands_open = true;
    let tick = hooks.tick_interval();
    let mut next_tick = tick.map(|t| Instant::now() + t);
    // Start the machine's timers.
    machine.handle_timeout(Instant::now());
    loop {
        if drain(machine, socket, hooks, &mut stats).await == Flow::Stop {
            return finish(machine, socket, hooks, stats).await;
        }
        let emulated = hooks.emulator().and_then(|e| e.next_deadline());
        let deadline = [machine.poll_timeout(), next_tick, emulated]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => return finish(machine, socket, hooks, stats).await,
            r = socket.recv_from(&mut buf) => {
                match r {
                    Ok((n, from)) => {
                        stats.received += 1;
                        machine.handle_datagram(Instant::now(), from, &buf[..n]);
                        // Take what else is already queued before draining, in one batch.
                        for _ in 1..BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => {
                                    stats.received += 1;
                                    machine.handle_datagram(Instant::now(), from, &buf[..n]);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => {
                        stats.recv_errors += 1;
                        tracing::debug!("receive error: {e}");
                    }
                }
            }
            c = commands.recv(), if commands_open => {
                match c {
                    Some(c) => machine.handle_command(Instant::now(), c),
                    None => commands_open = false,
                }
            }
            _ = sleep => {
                let now = Instant::now();
                if machine.poll_timeout().is_some_and(|t| t <= now) {
                    machine.handle_timeout(now);
                }
                if let (Some(t), Some(interval)) = (next_tick, tick)
                    && t <= now
                {
                    next_tick = Some(now + interval);
                    if hooks.on_tick(machine, now) == Flow::Stop {
                        return finish(machine, socket, hooks, stats).await;
                    }
                }
            }
        }
    }
}

/// Sends what the machine queued last (a hook's final unwatch or leave) before returning.
async fn finish<M: Machine, H: Hooks<M>>(
    machine: &mut M,
    socket: &UdpSocket,
    hooks: &mut H,
    mut stats: DriverStats,
) -> DriverStats {
    let _ = drain(machine, socket, hooks, &mut stats).await;
    stats
}

async fn drain<M: Machine, H: Hooks<M>>(
    machine: &mut M,
    socket: &UdpSocket,
    hooks: &mut H,
    stats: &mut DriverStats,
) -> Flow {
    loop {
        let mut idle = true;
        while let Some(t) = machine.poll_transmit() {
            idle = false;
            let t = match hooks.emulator() {
                None => t,
                Some(emulator) => match emulator.submit(Instant::now(), t) {
                    Some(t) => t,
                    None => continue,
                },
            };
            send(socket, &t, stats).await;
        }
        while let Some(e) = machine.poll_event() {
            idle = false;
            if hooks.on_event(machine, Instant::now(), e) == Flow::Stop {
                return Flow::Stop;
            }
        }
        if let Some(emulator) = hooks.emulator() {
            let now = Instant::now();
            while let Some(t) = emulator.poll_ready(now) {
                send(socket, &t, stats).await;
            }
        }
        if idle {
            return Flow::Continue;
        }
    }
}

async fn send(socket: &UdpSocket, t: &Transmit, stats: &mut DriverStats) {
    let r = match socket.try_send_to(&t.payload, t.dst) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            socket.send_to(&t.payload, t.dst).await
        }
        other => other,
    };
    match r {
        Ok(_) => stats.sent += 1,
        Err(e) => {
            stats.send_errors += 1;
            tracing::debug!("send to {} failed: {e}", t.dst);
        }
    }
}
