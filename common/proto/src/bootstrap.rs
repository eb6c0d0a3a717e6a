//! Bootstrapping: the bootstrapper's directory machine and the joining side's retry machine.
//!
//! A node or server asks the bootstrapper, by its topology id, for its own address and its
//! neighbours. Requests are plain datagrams retried with backoff until answered, so it does
//! not matter whether the bootstrapper starts first, restarts, or is briefly unreachable. Once
//! a process has its neighbours it never needs the bootstrapper again.

use crate::machine::{Machine, Transmit};
use crate::rng::Rng;
use crate::wire::{BootErrorCode, Datagram, Message, Neighbour};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the bootstrapper knows of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the process must listen.
    pub addr: SocketAddr,
    /// Its overlay neighbours.
    pub neighbours: Vec<Neighbour>,
}

/// Topology id → entry; built by the bootstrapper binary from a validated topology file.
pub type Directory = BTreeMap<String, Entry>;

/// Commands to the bootstrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapperCommand {
    /// Serve this directory from now on.
    Replace(Directory),
}

/// What the bootstrapper reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapperEvent {
    /// A known process asked and was answered.
    Served { id: String, from: SocketAddr },
    /// An unknown id asked.
    Unknown { id: String, from: SocketAddr },
}

/// The bootstrapper machine: answers [`Message::BootRequest`]s from its directory.
#[derive(Debug, Default)]
pub struct Bootstrapper {
    directory: Directory,
    /// Where the directory came from (a file name), for the answers to unknown ids.
    source: String,
    transmits: VecDeque<Transmit>,
    events: VecDeque<BootstrapperEvent>,
    malformed: u64,
}

impl Bootstrapper {
    /// A bootstrapper serving `directory`, read from `source` (named in error answers).
    pub fn new(directory: Directory, source: impl Into<String>) -> Self {
        Self {
            directory,
            source: source.into(),
            ..Self::default()
        }
    }

    /// The answer to an unknown id: where we looked and which ids exist, within 255 bytes.
    fn unknown_text(&self, id: &str) -> String {
        let mut text = format!("id {id:?} is not in {} (known ids:", self.source);
        for (i, known) in self.directory.keys().enumerate() {
            if text.len() + known.len() + 8 > 255 {
                text.push_str(" …");
                break;
            }
            text.push_str(if i == 0 { " " } else { ", " });
            text.push_str(known);
        }
        text.push(')');
        text
    }

    /// Datagrams dropped as malformed or unexpected.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

impl Machine for Bootstrapper {
    type Command = BootstrapperCommand;
    type Event = BootstrapperEvent;

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(Datagram::Control(Message::BootRequest { nonce, id })) = Datagram::decode(datagram)
        else {
            self.malformed += 1;
            return;
        };
        let reply = match self.directory.get(&id) {
            Some(e) => {
                self.events.push_back(BootstrapperEvent::Served {
                    id: id.clone(),
                    from,
                });
                Message::BootReply {
                    nonce,
                    id,
                    addr: e.addr,
                    neighbours: e.neighbours.clone(),
                }
            }
            None => {
                let text = self.unknown_text(&id);
                self.events
                    .push_back(BootstrapperEvent::Unknown { id, from });
                Message::BootError {
                    nonce,
                    code: BootErrorCode::UnknownId,
                    text,
                }
            }
        };
        self.transmits.push_back(Transmit {
            dst: from,
            payload: Datagram::Control(reply).encode(),
        });
    }

    fn handle_command(&mut self, _now: Instant, command: BootstrapperCommand) {
        match command {
            BootstrapperCommand::Replace(d) => self.directory = d,
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<BootstrapperEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// What the joining side learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinerEvent {
    /// The bootstrapper answered.
    Joined {
        /// Where this process must listen.
        addr: SocketAddr,
        /// Its overlay neighbours.
        neighbours: Vec<Neighbour>,
    },
    /// The bootstrapper does not know this id: retrying will not help.
    Refused { reason: String },
    /// A request went unanswered; the joiner keeps trying (for logs).
    Retrying { attempt: u32, next_in: Duration },
}

/// The joining side: asks the bootstrapper until it answers, with exponential backoff.
#[derive(Debug)]
pub struct Joiner {
    id: String,
    bootstrapper: SocketAddr,
    nonce: u32,
    attempt: u32,
    next_send: Option<Instant>,
    done: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<JoinerEvent>,
}

/// First retry delay of the joiner.
pub const JOIN_RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay of the joiner.
pub const JOIN_RETRY_MAX: Duration = Duration::from_secs(4);

impl Joiner {
    /// A joiner for topology id `id`; its first request goes out at `now`.
    pub fn new(id: impl Into<String>, bootstrapper: SocketAddr, seed: u64, now: Instant) -> Self {
        Self {
            id: id.into(),
            bootstrapper,
            nonce: Rng::new(seed).next_u32(),
            attempt: 0,
            next_send: Some(now),
            done: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn delay(attempt: u32) -> Duration {
        JOIN_RETRY_MIN
            .saturating_mul(1 << attempt.min(8))
            .min(JOIN_RETRY_MAX)
    }
}

impl Machine for Joiner {
    type Command = ();
    type Event = JoinerEvent;

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.done || from != self.bootstrapper {
            return;
        }
        match Datagram::decode(datagram) {
            Ok(Datagram::Control(Message::BootReply {
                nonce,
                id,
                addr,
                neighbours,
            })) if nonce == self.nonce && id == self.id => {
                self.done = true;
                self.events
                    .push_back(JoinerEvent::Joined { addr, neighbours });
            }
            Ok(Datagram::Control(Message::BootError { nonce, text, .. }))
                if nonce == self.nonce =>
            {
                self.done = true;
                self.events.push_back(JoinerEvent::Refused { reason: text });
            }
            _ => {}
        }
    }

    fn handle_command(&mut self, _now: Instant, _command: ()) {}

    fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if self.next_send.is_some_and(|t| now < t) {
            return;
        }
        if self.attempt > 0 {
            self.events.push_back(JoinerEvent::Retrying {
                attempt: self.attempt,
                next_in: Self::delay(self.attempt),
            });
        }
        self.transmits.push_back(Transmit {
            dst: self.bootstrapper,
            payload: Datagram::Control(Message::BootRequest {
                nonce: self.nonce,
                id: self.id.clone(),
            })
            .encode(),
        });
        self.next_send = Some(now + Self::delay(self.attempt));
        self.attempt += 1;
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<JoinerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done { None } else { self.next_send }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 7000))
    }

    fn t0() -> Instant {
        crate::test_epoch()
    }

    fn directory() -> Directory {
        let mut d = Directory::new();
        d.insert(
            "n1".into(),
            Entry {
                addr: addr(3),
                neighbours: vec![Neighbour {
                    id: "s1".into(),
                    addr: addr(2),
                }],
            },
        );
        d
    }

    #[test]
    fn joiner_retries_with_backoff_until_the_bootstrapper_answers() {
        let t = t0();
        let mut j = Joiner::new("n1", addr(1), 5, t);
        let mut b = Bootstrapper::new(directory(), "t.toml");
        assert_eq!(j.poll_timeout(), Some(t));
        j.handle_timeout(t);
        let first = j.poll_transmit().expect("first request");
        // bootstrapper down: the request is lost; the next one comes after 250 ms, then 500 ms
        assert_eq!(j.poll_timeout(), Some(t + Duration::from_millis(250)));
        j.handle_timeout(t + Duration::from_millis(100));
        assert!(
            j.poll_transmit().is_none(),
            "an early wake-up sends nothing"
        );
        j.handle_timeout(t + Duration::from_millis(250));
        let second = j.poll_transmit().expect("retry");
        assert_eq!(first.payload, second.payload);
        assert_eq!(j.poll_timeout(), Some(t + Duration::from_millis(750)));
        // the bootstrapper is back and answers
        b.handle_datagram(t, addr(3), &second.payload);
        let reply = b.poll_transmit().expect("reply");
        assert_eq!(reply.dst, addr(3));
        j.handle_datagram(t, addr(1), &reply.payload);
        let events: Vec<_> = std::iter::from_fn(|| j.poll_event()).collect();
        assert!(events.contains(&JoinerEvent::Joined {
            addr: addr(3),
            neighbours: vec![Neighbour {
                id: "s1".into(),
                addr: addr(2)
            }],
        }));
        assert_eq!(j.poll_timeout(), None);
    }

    #[test]
    fn unknown_id_is_refused_with_a_reason() {
        let t = t0();
        let mut j = Joiner::new("n9", addr(1), 5, t);
        let mut b = Bootstrapper::new(directory(), "t.toml");
        j.handle_timeout(t);
        let req = j.poll_transmit().expect("request");
        b.handle_datagram(t, addr(9), &req.payload);
        let reply = b.poll_transmit().expect("reply");
        j.handle_datagram(t, addr(1), &reply.payload);
        match j.poll_event() {
            Some(JoinerEvent::Refused { reason }) => {
                assert_eq!(reason, "id \"n9\" is not in t.toml (known ids: n1)");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn replies_from_elsewhere_or_with_another_nonce_are_ignored() {
        let t = t0();
        let mut j = Joiner::new("n1", addr(1), 5, t);
        let forged = Datagram::Control(Message::BootReply {
            nonce: 0,
            id: "n1".into(),
            addr: addr(66),
            neighbours: vec![],
        })
        .encode();
        j.handle_datagram(t, addr(1), &forged);
        j.handle_datagram(t, addr(66), &forged);
        assert!(j.poll_event().is_none());
    }

    #[test]
    fn garbage_is_counted_not_answered() {
        let mut b = Bootstrapper::new(directory(), "t.toml");
        b.handle_datagram(t0(), addr(9), b"hello");
        assert!(b.poll_transmit().is_none());
        assert_eq!(b.malformed(), 1);
    }
}
