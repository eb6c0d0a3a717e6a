//! Link emulation through the real driver: a sender machine on one UDP socket, a plain
//! receiver on another, both on 127.0.0.1.

use meshcast_io::{Emulator, Flow, Hooks, Machine, Shutdown};
use meshcast_proto::Transmit;
use meshcast_proto::link::LinkParams;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Nothing here should take this long; reaching it fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(30);

/// Sends `n` numbered datagrams to `dst`, one every `interval`, when told to. Each datagram
/// carries its number and the moment it was handed to the driver (nanoseconds since `epoch`),
/// so the receiver can measure the one-way delay on the same clock.
#[derive(Debug)]
struct Sender {
    dst: SocketAddr,
    epoch: Instant,
    interval: Duration,
    next_seq: u32,
    /// Datagrams still to schedule.
    remaining: u32,
    /// Datagrams due now, not yet polled.
    ready: u32,
    next: Option<Instant>,
}

impl Sender {
    fn new(dst: SocketAddr, epoch: Instant, interval: Duration) -> Self {
        Self {
            dst,
            epoch,
            interval,
            next_seq: 0,
            remaining: 0,
            ready: 0,
            next: None,
        }
    }

    fn finished(&self) -> bool {
        self.remaining == 0 && self.ready == 0
    }
}

impl Machine for Sender {
    type Command = u32;
    type Event = ();

    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}

    fn handle_command(&mut self, now: Instant, n: u32) {
        self.remaining += n;
        self.next = Some(now);
        self.handle_timeout(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.next
            && t <= now
            && self.remaining > 0
        {
            self.remaining -= 1;
            self.ready += 1;
            self.next = (self.remaining > 0).then(|| t + self.interval);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.ready == 0 {
            return None;
        }
        self.ready -= 1;
        let mut payload = self.next_seq.to_be_bytes().to_vec();
        let stamp = Instant::now() - self.epoch;
        payload.extend_from_slice(&(stamp.as_nanos() as u64).to_be_bytes());
        self.next_seq += 1;
        Some(Transmit {
            dst: self.dst,
            payload,
        })
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next.filter(|_| self.remaining > 0)
    }
}

/// Owns the emulator and stops the driver once everything was sent and nothing is in flight.
struct SendAll {
    emulator: Emulator,
}

impl Hooks<Sender> for SendAll {
    fn on_tick(&mut self, sender: &mut Sender, _: Instant) -> Flow {
        if sender.finished() && self.emulator.stats().in_flight == 0 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }

    fn emulator(&mut self) -> Option<&mut Emulator> {
        self.emulator.is_active().then_some(&mut self.emulator)
    }
}

/// What the receiver saw.
#[derive(Debug)]
struct Received {
    /// One-way delay per sequence number.
    delays: BTreeMap<u32, Duration>,
    /// Sequence numbers in arrival order.
    order: Vec<u32>,
}

/// Receives until `expected` says how many datagrams to wait for and that many arrived, or
/// the deadline passes.
async fn receive(
    socket: UdpSocket,
    epoch: Instant,
    mut expected: oneshot::Receiver<usize>,
) -> Received {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut got = Received {
        delays: BTreeMap::new(),
        order: Vec::new(),
    };
    let mut want: Option<usize> = None;
    let mut buf = [0u8; 64];
    while want.is_none_or(|w| got.order.len() < w) {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, _) = r.expect("receive");
                let arrived = Instant::now() - epoch;
                assert_eq!(n, 12, "a datagram of the sender");
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                let sent = Duration::from_nanos(u64::from_be_bytes(buf[4..12].try_into().unwrap()));
                got.delays.insert(seq, arrived - sent);
                got.order.push(seq);
            }
            w = &mut expected, if want.is_none() => want = Some(w.expect("the sender reports")),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    got
}

/// Sends `n` datagrams through the driver with `params` emulated toward the receiver (or
/// toward some other address with `toward_receiver` false) and returns what arrived and the
/// emulator's final counters.
async fn exchange(
    n: u32,
    interval: Duration,
    params: LinkParams,
    toward_receiver: bool,
) -> (Received, meshcast_io::EmulationStats) {
    let epoch = Instant::now();
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rx_socket = meshcast_io::bind_udp(local).expect("bind receiver");
    let rx_addr = rx_socket.local_addr().unwrap();
    let tx_socket = meshcast_io::bind_udp(local).expect("bind sender");
    let (count_tx, count_rx) = oneshot::channel();
    let receiver = tokio::spawn(receive(rx_socket, epoch, count_rx));

    let mut emulator = Emulator::new(42);
    let emulated = if toward_receiver {
        rx_addr
    } else {
        "127.0.0.1:9".parse().unwrap()
    };
    emulator.set(emulated, params);
    let mut hooks = SendAll { emulator };
    let mut sender = Sender::new(rx_addr, epoch, interval);
    let (cmd_tx, cmd_rx) = mpsc::channel(1);
    cmd_tx.send(n).await.unwrap();
    let (_trigger, shutdown) = Shutdown::new();
    let driver = tokio::time::timeout(
        DEADLINE,
        meshcast_io::run(&mut sender, &tx_socket, cmd_rx, &mut hooks, shutdown),
    )
    .await
    .expect("the sender finishes");
    let stats = hooks.emulator.stats();
    let delivered = u64::from(n) - stats.dropped();
    assert_eq!(driver.sent, delivered, "every surviving datagram was sent");
    count_tx.send(delivered as usize).unwrap();
    (receiver.await.unwrap(), stats)
}

#[tokio::test]
async fn emulated_latency_and_loss_shape_what_the_receiver_gets() {
    let n = 1000;
    let params = LinkParams {
        latency: Duration::from_millis(30),
        loss: 0.2,
        ..LinkParams::default()
    };
    let (got, stats) = exchange(n, Duration::from_millis(1), params, true).await;

    assert_eq!(stats.offered, u64::from(n));
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.dropped(), stats.dropped_random);
    let delivered = (u64::from(n) - stats.dropped()) as usize;
    assert_eq!(
        got.order.len(),
        delivered,
        "the receiver got every datagram the emulator let through"
    );
    let fraction = got.order.len() as f64 / f64::from(n);
    assert!(
        (0.75..=0.85).contains(&fraction),
        "received {fraction:.3} of the datagrams with 20 % loss"
    );
    assert_eq!(
        stats.delayed as usize, delivered,
        "every survivor was delayed"
    );
    let min = got.delays.values().min().copied().unwrap();
    assert!(
        min >= Duration::from_millis(30),
        "one-way delay {min:?} below the emulated 30 ms"
    );
    // FIFO: no reordering was asked for.
    assert!(got.order.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[tokio::test]
async fn destinations_that_are_not_emulated_are_sent_at_once() {
    let n = 200;
    let params = LinkParams {
        latency: Duration::from_secs(60),
        loss: 1.0,
        ..LinkParams::default()
    };
    let (got, stats) = exchange(n, Duration::ZERO, params, false).await;
    assert_eq!(got.order.len(), n as usize);
    assert_eq!(stats, meshcast_io::EmulationStats::default());
}
