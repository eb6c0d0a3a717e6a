//! The network side of the GUI: a background thread running the [`Client`] machine on a
//! current-thread tokio runtime with the one io driver ([`meshcast_io::run`]), and the shared
//! [`ClientView`] snapshot the window draws.
//!
//! # Data flow
//!
//! ```text
//!  UI thread ── ClientCommand (mpsc) ──▶ driver ──▶ Client machine ──▶ UDP
//!      ▲                                   │
//!      └──── Arc<Mutex<ClientView>> ◀── ViewHooks (events + 100 ms tick) ──▶ MediaSink ──▶ player
//! ```
//!
//! The hooks own every write to the view except the UI's own intentions (which channel it
//! asked to play), and they call `request_repaint` on the egui context kept in the view
//! whenever something visible changed, so RTTs move on screen without any user input.
//! Media for the playing channel goes straight from the hooks into the player's bounded queue
//! ([`MediaSink`]); the UI thread never touches a payload.

use crate::player::{MediaSink, Offer};
use meshcast_io::{Flow, Hooks, Shutdown, ShutdownTrigger};
use meshcast_proto::Machine;
use meshcast_proto::client::{Client, ClientCommand, ClientConfig, ClientEvent, PopView};
use meshcast_proto::stats::ViewerReport;
use meshcast_proto::wire::ChannelInfo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the hooks refresh the view (RTTs, live stats).
pub const VIEW_TICK: Duration = Duration::from_millis(100);

/// How often the channel list is asked for again, so channels that appear later show up.
pub const CHANNEL_REFRESH: Duration = Duration::from_secs(5);

/// Commands queued between the UI and the driver.
pub const COMMAND_QUEUE: usize = 64;

/// Everything the window shows, written by the network thread and the UI, read by the UI.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    /// Every PoP with RTT, liveness and the selected marker.
    pub pops: Vec<PopView>,
    /// The selected PoP's channel list.
    pub channels: Vec<ChannelInfo>,
    /// The channel being played (set by the UI on Play, cleared on Stop or failure).
    pub playing: Option<String>,
    /// Live (or, after Stop, final) KPIs of the playing channel.
    pub report: Option<ViewerReport>,
    /// The last notice for the user: "player closed", "no such channel: x", errors.
    pub notice: Option<String>,
    /// Payloads dropped because the player did not keep up.
    pub player_drops: u64,
    /// Where the playing channel's payloads go; `None` without a player.
    pub sink: Option<MediaSink>,
    /// Asked to repaint when the view changes; set by the UI on its first frame.
    pub repaint: Option<egui::Context>,
    /// The window is closing: the hooks unwatch and end the driver (see [`NetHandle::close`]).
    pub closing: bool,
}

/// The view shared between the network thread and the UI.
pub type SharedView = Arc<Mutex<ClientView>>;

/// Locks the view; a panic elsewhere while holding it leaves plain data, still usable.
pub fn lock(view: &SharedView) -> MutexGuard<'_, ClientView> {
    view.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientView {
    fn repaint(&self) {
        if let Some(ctx) = &self.repaint {
            ctx.request_repaint();
        }
    }

    /// The playing channel ended without the user asking (player gone, channel unknown).
    fn end_playing(&mut self, notice: String) {
        self.playing = None;
        self.sink = None;
        self.notice = Some(notice);
    }
}

/// Driver hooks that keep a [`ClientView`] current and feed the player.
#[derive(Debug)]
pub struct ViewHooks {
    view: SharedView,
    next_list_refresh: Option<Instant>,
    /// Set on the first tick that saw `closing`: the next one ends the driver, after the
    /// unwatch queued meanwhile has been sent.
    unwatched: bool,
}

impl ViewHooks {
    /// Hooks writing into `view`.
    pub fn new(view: SharedView) -> Self {
        Self {
            view,
            next_list_refresh: None,
            unwatched: false,
        }
    }

    fn stop_playing(machine: &mut Client, now: Instant, v: &mut ClientView, notice: String) {
        if let Some(channel) = v.playing.clone() {
            tracing::info!("stopping {channel}: {notice}");
            machine.handle_command(now, ClientCommand::Stop(channel));
        }
        v.end_playing(notice);
    }
}

impl Hooks<Client> for ViewHooks {
    fn on_event(&mut self, machine: &mut Client, now: Instant, event: ClientEvent) -> Flow {
        let mut v = lock(&self.view);
        match event {
            ClientEvent::Media {
                channel, payload, ..
            } => {
                // Per datagram: no repaint here, the tick shows the counters.
                let offer = match &v.sink {
                    Some(sink) if v.playing.as_deref() == Some(channel.as_str()) => {
                        Some(sink.offer(payload))
                    }
                    _ => None,
                };
                match offer {
                    Some(Offer::Dropped) => v.player_drops += 1,
                    Some(Offer::Closed) => {
                        Self::stop_playing(machine, now, &mut v, "player closed".into());
                        v.repaint();
                    }
                    Some(Offer::Queued) | None => {}
                }
                return Flow::Continue;
            }
            ClientEvent::PopSelected { pop, previous } => {
                match previous {
                    Some(p) => tracing::info!("switched PoP from {p} to {pop}"),
                    None => tracing::info!("selected PoP {pop}"),
                }
                v.pops = machine.pops(now);
                self.next_list_refresh = Some(now + CHANNEL_REFRESH);
            }
            ClientEvent::PopLost { pop } => {
                tracing::warn!("PoP {pop} stopped answering");
                v.pops = machine.pops(now);
            }
            ClientEvent::Channels(list) => {
                tracing::debug!("{} channels", list.len());
                v.channels = list;
            }
            ClientEvent::Watching {
                channel,
                stream,
                pop,
            } => {
                tracing::info!("watching {channel} (stream {stream:08x}) via {pop}");
            }
            ClientEvent::NoSuchChannel { channel } => {
                tracing::warn!("no such channel: {channel}");
                if v.playing.as_deref() == Some(channel.as_str()) {
                    v.end_playing(format!("no such channel: {channel}"));
                } else {
                    v.notice = Some(format!("no such channel: {channel}"));
                }
            }
        }
        v.repaint();
        Flow::Continue
    }

    fn on_tick(&mut self, machine: &mut Client, now: Instant) -> Flow {
        {
            let mut v = lock(&self.view);
            if v.closing {
                if self.unwatched {
                    return Flow::Stop;
                }
                self.unwatched = true;
                Self::stop_playing(machine, now, &mut v, "closing".into());
                // Anything else still watched (a Stop lost to a full command queue).
                let rest: Vec<String> = machine.watching().map(str::to_owned).collect();
                for c in rest {
                    machine.handle_command(now, ClientCommand::Stop(c));
                }
                return Flow::Continue;
            }
        }
        if machine.selected_pop().is_some() && self.next_list_refresh.is_none_or(|t| now >= t) {
            self.next_list_refresh = Some(now + CHANNEL_REFRESH);
            machine.handle_command(now, ClientCommand::RefreshChannels);
        }
        let mut v = lock(&self.view);
        let mut changed = false;
        let pops = machine.pops(now);
        if pops != v.pops {
            v.pops = pops;
            changed = true;
        }
        if v.sink.as_ref().is_some_and(MediaSink::is_closed) {
            Self::stop_playing(machine, now, &mut v, "player closed".into());
            changed = true;
        }
        // After Stop the last report stays on screen.
        if let Some(report) = v.playing.as_deref().and_then(|c| machine.report(c))
            && v.report.as_ref() != Some(&report)
        {
            v.report = Some(report);
            changed = true;
        }
        if changed {
            v.repaint();
        }
        Flow::Continue
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(VIEW_TICK)
    }
}

/// How the viewer trades latency for resilience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Playout buffer latency: time left for lost packets to be re-sent.
    pub latency: Duration,
    /// Watch at the two best PoPs at once (a PoP failure then costs no packet).
    pub dual: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            latency: ClientConfig::new(Vec::new(), 0).playout_latency,
            dual: false,
        }
    }
}

/// The client machine for these PoPs, with the default tuning.
pub fn client_machine(pops: Vec<SocketAddr>, seed: u64) -> Client {
    client_machine_tuned(pops, seed, Tuning::default())
}

/// The client machine for these PoPs, tuned.
pub fn client_machine_tuned(pops: Vec<SocketAddr>, seed: u64, tuning: Tuning) -> Client {
    let mut config = ClientConfig::new(pops, seed);
    config.playout_latency = tuning.latency;
    config.dual_pop = tuning.dual;
    Client::new(config)
}

/// The running network thread. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct NetHandle {
    /// Commands for the client machine.
    pub commands: mpsc::Sender<ClientCommand>,
    /// The view the hooks keep current.
    pub view: SharedView,
    /// The thread's runtime, for spawning players on it.
    pub runtime: tokio::runtime::Handle,
    trigger: ShutdownTrigger,
    thread: Option<JoinHandle<()>>,
}

impl NetHandle {
    /// Binds `bind` and starts the client for `pops` on a new thread. Binding happens here so
    /// a bad address is reported to the caller, not lost in a thread.
    pub fn spawn(
        pops: Vec<SocketAddr>,
        seed: u64,
        tuning: Tuning,
        bind: SocketAddr,
        view: SharedView,
    ) -> anyhow::Result<NetHandle> {
        use anyhow::Context as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the tokio runtime")?;
        let socket = {
            let _guard = runtime.enter();
            meshcast_io::bind_udp(bind).with_context(|| format!("binding UDP {bind}"))?
        };
        tracing::info!(
            "client on {} probing {}",
            socket.local_addr().map_or(bind, |a| a),
            list_addrs(&pops)
        );
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (trigger, shutdown) = Shutdown::new();
        let handle = runtime.handle().clone();
        let hooks_view = view.clone();
        let thread = std::thread::Builder::new()
            .name("meshcast-net".into())
            .spawn(move || {
                let mut machine = client_machine_tuned(pops, seed, tuning);
                let mut hooks = ViewHooks::new(hooks_view);
                let stats = runtime.block_on(meshcast_io::run(
                    &mut machine,
                    &socket,
                    rx,
                    &mut hooks,
                    shutdown,
                ));
                tracing::debug!("network thread done: {stats:?}");
            })
            .context("spawning the network thread")?;
        Ok(NetHandle {
            commands: tx,
            view,
            runtime: handle,
            trigger,
            thread: Some(thread),
        })
    }

    /// Ends the network side politely: the hooks unwatch every channel (so the PoP stops
    /// sending at once instead of after its soft-state timeout) and end the driver two ticks
    /// later. Falls back to [`NetHandle::shutdown`] if that takes longer than `grace`.
    pub fn close(&mut self, grace: Duration) {
        lock(&self.view).closing = true;
        let deadline = Instant::now() + grace;
        while self
            .thread
            .as_ref()
            .is_some_and(|t| !t.is_finished() && Instant::now() < deadline)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shutdown();
    }

    /// Stops the driver at once and joins the thread (idempotent).
    pub fn shutdown(&mut self) {
        self.trigger.fire();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the network thread panicked");
        }
    }
}

impl Drop for NetHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `a, b, c` for log lines and error messages.
pub fn list_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(playing: Option<&str>, sink: Option<MediaSink>) -> (SharedView, ViewHooks, Client) {
        let view: SharedView = Arc::new(Mutex::new(ClientView {
            playing: playing.map(str::to_owned),
            sink,
            ..Default::default()
        }));
        let hooks = ViewHooks::new(view.clone());
        let mut machine = client_machine(vec!["127.0.0.1:9".parse().unwrap()], 1);
        if let Some(c) = playing {
            machine.handle_command(Instant::now(), ClientCommand::Watch(c.to_owned()));
        }
        (view, hooks, machine)
    }

    fn media(channel: &str, byte: u8) -> ClientEvent {
        ClientEvent::Media {
            channel: channel.into(),
            seq: 0,
            payload: vec![byte; 188],
        }
    }

    #[test]
    fn media_of_the_playing_channel_goes_to_the_player_and_overflow_is_counted() {
        let (sink, mut rx) = MediaSink::pair(1);
        let (view, mut hooks, mut machine) = setup(Some("a"), Some(sink));
        let now = Instant::now();
        hooks.on_event(&mut machine, now, media("other", 9));
        hooks.on_event(&mut machine, now, media("a", 1));
        hooks.on_event(&mut machine, now, media("a", 2));
        assert_eq!(rx.try_recv().unwrap(), vec![1; 188]);
        assert!(rx.try_recv().is_err(), "only one fits the queue");
        assert_eq!(lock(&view).player_drops, 1);
        assert_eq!(lock(&view).playing.as_deref(), Some("a"));
    }

    #[test]
    fn a_closed_player_stops_the_watch_and_says_so() {
        let (sink, rx) = MediaSink::pair(4);
        let (view, mut hooks, mut machine) = setup(Some("a"), Some(sink));
        assert_eq!(machine.watching().count(), 1);
        drop(rx);
        hooks.on_tick(&mut machine, Instant::now());
        let v = lock(&view);
        assert_eq!(v.playing, None);
        assert!(v.sink.is_none());
        assert_eq!(v.notice.as_deref(), Some("player closed"));
        assert_eq!(machine.watching().count(), 0, "the watch was stopped");
    }

    #[test]
    fn an_unknown_channel_ends_the_play_with_a_notice() {
        let (sink, _rx) = MediaSink::pair(4);
        let (view, mut hooks, mut machine) = setup(Some("nope"), Some(sink));
        let event = ClientEvent::NoSuchChannel {
            channel: "nope".into(),
        };
        hooks.on_event(&mut machine, Instant::now(), event);
        let v = lock(&view);
        assert_eq!(v.playing, None);
        assert_eq!(v.notice.as_deref(), Some("no such channel: nope"));
    }

    #[test]
    fn closing_unwatches_then_ends_the_driver() {
        let (view, mut hooks, mut machine) = setup(Some("a"), None);
        let now = Instant::now();
        assert_eq!(hooks.on_tick(&mut machine, now), Flow::Continue);
        lock(&view).closing = true;
        assert_eq!(hooks.on_tick(&mut machine, now), Flow::Continue);
        assert_eq!(machine.watching().count(), 0, "unwatched first");
        assert_eq!(lock(&view).playing, None);
        assert_eq!(hooks.on_tick(&mut machine, now), Flow::Stop);
    }

    #[test]
    fn ticks_publish_the_pops_and_repaint() {
        let (view, mut hooks, mut machine) = setup(None, None);
        let ctx = egui::Context::default();
        let repaints = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = repaints.clone();
        ctx.set_request_repaint_callback(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        lock(&view).repaint = Some(ctx);
        let now = Instant::now();
        hooks.on_tick(&mut machine, now);
        let after_first = repaints.load(std::sync::atomic::Ordering::SeqCst);
        assert!(after_first > 0, "new PoP rows must be drawn");
        hooks.on_tick(&mut machine, now);
        assert_eq!(
            repaints.load(std::sync::atomic::Ordering::SeqCst),
            after_first,
            "nothing changed: no repaint"
        );
        let v = lock(&view);
        assert_eq!(v.pops.len(), 1);
        assert!(!v.pops[0].alive);
        assert_eq!(v.pops[0].srtt, None);
    }
}
