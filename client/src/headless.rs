//! Headless mode: list the channels of the chosen PoP, or watch one channel for a while —
//! recording the raw bytes, feeding a player, and writing the viewer KPI report at the end.
//!
//! The client machine runs on a current-thread tokio runtime on the main thread with the one
//! io driver; [`HeadlessHooks`] decide when the session is over. Ending a watch is two-step:
//! the hook that decides (deadline, Ctrl-C, player gone) finishes the measurement and issues
//! `Stop` — the driver then sends the unwatch to the PoP — and the next tick ends the driver.
//! That is also why Ctrl-C is watched by the hooks, not handed to the driver: the driver would
//! return at once, before the unwatch went out.
//!
//! # Exit codes
//!
//! 0: listed, or watched with media received (also when stopped by Ctrl-C or by the player
//! closing). 1: no such channel, no PoP answered within [`POP_WAIT`], the PoP never sent its
//! channel list, no media at all, or an output file failed. (2 is clap's, for bad arguments.)

use crate::net::{client_machine_tuned, list_addrs};
use crate::player::{MediaSink, Offer, Player, PlayerKind};
use crate::record::{Recorder, write_atomically};
use anyhow::Context as _;
use meshcast_io::{Flow, Hooks, Shutdown};
use meshcast_proto::Machine;
use meshcast_proto::client::{Client, ClientCommand, ClientEvent};
use meshcast_proto::stats::ViewerReport;
use meshcast_proto::wire::ChannelInfo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long to wait for any PoP to answer before giving up.
pub const POP_WAIT: Duration = Duration::from_secs(10);

/// How long the chosen PoP gets to send its channel list (`--list`).
pub const LIST_WAIT: Duration = Duration::from_secs(10);

/// How often the hooks check deadlines and Ctrl-C.
pub const TICK: Duration = Duration::from_millis(100);

/// What a headless run does.
#[derive(Debug, Clone)]
pub struct HeadlessOptions {
    /// Candidate PoPs.
    pub pops: Vec<SocketAddr>,
    /// Local address.
    pub bind: SocketAddr,
    /// Client machine seed.
    pub seed: u64,
    /// Playout latency and dual-PoP mode.
    pub tuning: crate::net::Tuning,
    /// List or watch.
    pub task: Task,
    /// Raw recording of the watched channel.
    pub record: Option<PathBuf>,
    /// Watch length from the request; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// Stats JSON destination.
    pub stats: Option<PathBuf>,
    /// Player fed with the stream.
    pub player: Option<PlayerKind>,
}

/// The one thing a headless run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Print the channel list and exit.
    List,
    /// Watch this channel.
    Watch(String),
}

/// Decides that no PoP answered: true once `limit` has passed since `started` without any
/// PoP ever being selected. A PoP selected once disarms it for good: losing PoPs later is the
/// machine's business (it switches), not a reason to quit.
#[derive(Debug, Clone)]
pub struct PopWatchdog {
    started: Instant,
    limit: Duration,
    answered: bool,
}

impl PopWatchdog {
    /// Armed at `started`.
    pub fn new(started: Instant, limit: Duration) -> Self {
        Self {
            started,
            limit,
            answered: false,
        }
    }

    /// Whether to give up, given the PoP selected at `now`.
    pub fn expired(&mut self, now: Instant, selected: Option<SocketAddr>) -> bool {
        self.answered |= selected.is_some();
        !self.answered && now.saturating_duration_since(self.started) >= self.limit
    }
}

/// Why a watch ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `--duration` elapsed.
    Duration,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The player exited.
    PlayerClosed,
}

/// How the session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The channel list was printed.
    Listed,
    /// The PoP knows no such channel.
    NoSuchChannel(String),
    /// No PoP answered in time.
    NoPop,
    /// The PoP never sent its channel list.
    NoChannelList(SocketAddr),
    /// The watch ended; the report is final.
    Watched {
        /// Why it ended.
        reason: EndReason,
        /// Final KPIs, `pop` set.
        report: ViewerReport,
    },
    /// Writing the recording failed; the watch was stopped.
    RecordFailed {
        /// What failed.
        error: String,
        /// KPIs up to the failure.
        report: ViewerReport,
    },
    /// Interrupted before anything happened (`--list`).
    Interrupted,
}

/// The driver hooks of a headless run.
#[derive(Debug)]
pub struct HeadlessHooks {
    task: Task,
    watchdog: PopWatchdog,
    interrupt: Shutdown,
    watch_deadline: Option<Instant>,
    list_deadline: Option<Instant>,
    recorder: Option<Recorder>,
    sink: Option<MediaSink>,
    player_drops: u64,
    outcome: Option<Outcome>,
    /// The driver must still run once more to send what the last hook queued.
    done: bool,
}

impl HeadlessHooks {
    /// Hooks for `task` that started at `started`; `interrupt` is the Ctrl-C signal.
    pub fn new(
        task: Task,
        started: Instant,
        duration: Option<Duration>,
        interrupt: Shutdown,
        recorder: Option<Recorder>,
        sink: Option<MediaSink>,
    ) -> Self {
        Self {
            watch_deadline: duration.map(|d| started + d),
            task,
            watchdog: PopWatchdog::new(started, POP_WAIT),
            interrupt,
            list_deadline: None,
            recorder,
            sink,
            player_drops: 0,
            outcome: None,
            done: false,
        }
    }

    /// The result, once the driver returned; also hands back the recorder to flush.
    pub fn into_outcome(self) -> (Option<Outcome>, Option<Recorder>, u64) {
        (self.outcome, self.recorder, self.player_drops)
    }

    fn watched_channel(&self) -> Option<&str> {
        match &self.task {
            Task::Watch(c) => Some(c),
            Task::List => None,
        }
    }

    /// Ends the measurement now and unwatches; the driver stops at the next tick.
    fn end_watch(
        &mut self,
        machine: &mut Client,
        now: Instant,
        outcome: impl FnOnce(ViewerReport) -> Outcome,
    ) {
        let Some(channel) = self.watched_channel().map(str::to_owned) else {
            return;
        };
        machine.finish(now, &channel);
        let mut report = machine.report(&channel).unwrap_or_default();
        if report.pop.is_none() {
            report.pop = machine.selected_pop().map(|p| p.to_string());
        }
        machine.handle_command(now, ClientCommand::Stop(channel));
        self.sink = None;
        self.outcome = Some(outcome(report));
        self.done = true;
    }

    fn give_up(&mut self, outcome: Outcome) -> Flow {
        self.outcome = Some(outcome);
        Flow::Stop
    }
}

impl Hooks<Client> for HeadlessHooks {
    fn on_event(&mut self, machine: &mut Client, now: Instant, event: ClientEvent) -> Flow {
        if self.done {
            return Flow::Continue;
        }
        match event {
            ClientEvent::Media {
                channel, payload, ..
            } => {
                if self.watched_channel() != Some(channel.as_str()) {
                    return Flow::Continue;
                }
                if let Some(r) = &mut self.recorder
                    && let Err(e) = r.write(&payload)
                {
                    let error = format!("writing {}: {e}", r.path().display());
                    self.end_watch(machine, now, |report| Outcome::RecordFailed {
                        error,
                        report,
                    });
                    return Flow::Continue;
                }
                if let Some(sink) = &self.sink {
                    match sink.offer(payload) {
                        Offer::Queued => {}
                        Offer::Dropped => self.player_drops += 1,
                        Offer::Closed => {
                            tracing::info!("player closed: ending the watch");
                            self.end_watch(machine, now, |report| Outcome::Watched {
                                reason: EndReason::PlayerClosed,
                                report,
                            });
                        }
                    }
                }
            }
            ClientEvent::PopSelected { pop, previous } => {
                match previous {
                    Some(p) => tracing::info!("switched PoP from {p} to {pop}"),
                    None => tracing::info!("selected PoP {pop}"),
                }
                if self.task == Task::List {
                    self.list_deadline = Some(now + LIST_WAIT);
                }
            }
            ClientEvent::PopLost { pop } => tracing::warn!("PoP {pop} stopped answering"),
            ClientEvent::Channels(list) => {
                if self.task == Task::List {
                    print!("{}", channel_table(&list));
                    return self.give_up(Outcome::Listed);
                }
            }
            ClientEvent::Watching {
                channel,
                stream,
                pop,
            } => tracing::info!("watching {channel} (stream {stream:08x}) via {pop}"),
            ClientEvent::NoSuchChannel { channel } => {
                if self.watched_channel() == Some(channel.as_str()) {
                    return self.give_up(Outcome::NoSuchChannel(channel));
                }
            }
        }
        Flow::Continue
    }

    fn on_tick(&mut self, machine: &mut Client, now: Instant) -> Flow {
        if self.done {
            // The previous round sent the unwatch.
            return Flow::Stop;
        }
        let interrupted = self.interrupt.is_set();
        if self.watchdog.expired(now, machine.selected_pop()) {
            return self.give_up(Outcome::NoPop);
        }
        match self.task {
            Task::List => {
                if interrupted {
                    return self.give_up(Outcome::Interrupted);
                }
                if let (Some(d), Some(pop)) = (self.list_deadline, machine.selected_pop())
                    && now >= d
                {
                    return self.give_up(Outcome::NoChannelList(pop));
                }
            }
            Task::Watch(_) => {
                let reason = if interrupted {
                    Some(EndReason::Interrupted)
                } else if self.watch_deadline.is_some_and(|d| now >= d) {
                    Some(EndReason::Duration)
                } else if self.sink.as_ref().is_some_and(MediaSink::is_closed) {
                    tracing::info!("player closed: ending the watch");
                    Some(EndReason::PlayerClosed)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    self.end_watch(machine, now, |report| Outcome::Watched { reason, report });
                }
            }
        }
        Flow::Continue
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK)
    }
}

/// The `--list` table: name, codec, resolution, fps, bitrate; columns aligned.
pub fn channel_table(list: &[ChannelInfo]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "NAME".into(),
        "CODEC".into(),
        "RESOLUTION".into(),
        "FPS".into(),
        "KBIT/S".into(),
    ]];
    for c in list {
        rows.push([
            c.name.clone(),
            c.codec.clone(),
            resolution(c),
            fps(c),
            c.bitrate_kbps.to_string(),
        ]);
    }
    let mut width = [0usize; 5];
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line = r
            .iter()
            .zip(width)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `WxH`, or `?` when the source did not say.
pub fn resolution(c: &ChannelInfo) -> String {
    if c.width == 0 || c.height == 0 {
        "?".into()
    } else {
        format!("{}x{}", c.width, c.height)
    }
}

/// Frames per second with two decimals (29.97), or `?`.
pub fn fps(c: &ChannelInfo) -> String {
    if c.fps_milli == 0 {
        "?".into()
    } else {
        format!("{:.2}", f64::from(c.fps_milli) / 1000.0)
    }
}

/// The one-line summary printed at the end of a watch.
pub fn summary(channel: &str, r: &ViewerReport) -> String {
    let startup = r
        .startup_ms
        .map_or_else(|| "none".to_owned(), |ms| format!("{ms:.1} ms"));
    format!(
        "watched {channel} via {} for {:.2} s: {} datagrams, {} TS packets, {} bytes, \
         {} continuity errors, {} seq gaps, {} stalls, startup {startup}, {:.0} kbit/s",
        r.pop.as_deref().unwrap_or("no PoP"),
        r.duration_ms / 1000.0,
        r.media_packets,
        r.ts_packets,
        r.bytes,
        r.continuity_errors,
        r.seq_gaps,
        r.stalls.len(),
        r.bitrate_kbps,
    )
}

/// Runs a headless session and returns the process exit code.
pub fn run(opts: HeadlessOptions) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshcast-client: cannot build the tokio runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(session(opts)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshcast-client: {e:#}");
            1
        }
    }
}

async fn session(opts: HeadlessOptions) -> anyhow::Result<u8> {
    let socket =
        meshcast_io::bind_udp(opts.bind).with_context(|| format!("binding UDP {}", opts.bind))?;
    tracing::info!(
        "client on {} probing {}",
        socket.local_addr().map_or(opts.bind, |a| a),
        list_addrs(&opts.pops)
    );
    let recorder = match (&opts.task, &opts.record) {
        (Task::Watch(_), Some(p)) => {
            Some(Recorder::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        _ => None,
    };
    // Forked from this (main) thread, which lives as long as the process: the player's
    // death signal is tied to it.
    let player = match (&opts.task, opts.player) {
        (Task::Watch(c), Some(kind)) => {
            Some(Player::spawn(&tokio::runtime::Handle::current(), kind, c)?)
        }
        _ => None,
    };
    let (interrupt_trigger, interrupt) = Shutdown::on_signals();
    // The driver gets a signal of its own that never fires: the hooks end the run.
    let (_driver_trigger, driver_shutdown) = Shutdown::new();
    let (tx, rx) = mpsc::channel(4);
    let started = Instant::now();
    if let Task::Watch(c) = &opts.task {
        tx.send(ClientCommand::Watch(c.clone())).await?;
    }
    let mut machine = client_machine_tuned(opts.pops.clone(), opts.seed, opts.tuning);
    let mut hooks = HeadlessHooks::new(
        opts.task.clone(),
        started,
        opts.duration,
        interrupt,
        recorder,
        player.as_ref().map(Player::sink),
    );
    let driver = meshcast_io::run(&mut machine, &socket, rx, &mut hooks, driver_shutdown).await;
    tracing::debug!("driver done: {driver:?}");
    drop(interrupt_trigger);
    // Kills the player (it gets no more data anyway).
    drop(player);
    let (outcome, recorder, player_drops) = hooks.into_outcome();
    if player_drops > 0 {
        tracing::warn!("{player_drops} payloads dropped: the player did not keep up");
    }
    if let Some(r) = recorder {
        let path = r.path().to_owned();
        let bytes = r
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!("recorded {bytes} bytes to {}", path.display());
    }
    let channel = match &opts.task {
        Task::Watch(c) => c.as_str(),
        Task::List => "",
    };
    Ok(match outcome {
        Some(Outcome::Listed) => 0,
        Some(Outcome::Interrupted) | None => {
            eprintln!("meshcast-client: interrupted");
            1
        }
        Some(Outcome::NoSuchChannel(c)) => {
            eprintln!("no such channel: {c}");
            1
        }
        Some(Outcome::NoPop) => {
            eprintln!(
                "no PoP answered within {} s (tried: {})",
                POP_WAIT.as_secs(),
                list_addrs(&opts.pops)
            );
            1
        }
        Some(Outcome::NoChannelList(pop)) => {
            eprintln!(
                "PoP {pop} sent no channel list within {} s",
                LIST_WAIT.as_secs()
            );
            1
        }
        Some(Outcome::RecordFailed { error, report }) => {
            write_stats(opts.stats.as_ref(), &report)?;
            eprintln!("meshcast-client: {error}");
            1
        }
        Some(Outcome::Watched { reason, report }) => {
            write_stats(opts.stats.as_ref(), &report)?;
            eprintln!("{}", summary(channel, &report));
            if report.media_packets == 0 {
                eprintln!(
                    "no media arrived for {channel} (PoP: {})",
                    report.pop.as_deref().unwrap_or("none")
                );
                1
            } else {
                tracing::debug!("watch ended: {reason:?}");
                0
            }
        }
    })
}

fn write_stats(path: Option<&PathBuf>, report: &ViewerReport) -> anyhow::Result<()> {
    if let Some(p) = path {
        write_atomically(p, report.to_json().as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::client_machine;

    fn info(name: &str, w: u16, h: u16, fps_milli: u32, kbps: u32) -> ChannelInfo {
        ChannelInfo {
            stream: 1,
            name: name.into(),
            codec: "h264".into(),
            width: w,
            height: h,
            fps_milli,
            bitrate_kbps: kbps,
        }
    }

    #[test]
    fn watchdog_gives_up_only_if_no_pop_was_ever_selected_in_time() {
        let t0 = Instant::now();
        let pop: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut w = PopWatchdog::new(t0, Duration::from_secs(10));
        assert!(!w.expired(t0 + Duration::from_secs(9), None));
        assert!(w.expired(t0 + Duration::from_secs(10), None));

        let mut w = PopWatchdog::new(t0, Duration::from_secs(10));
        assert!(!w.expired(t0 + Duration::from_secs(1), Some(pop)));
        // Every PoP lost later: the machine handles that, the watchdog stays quiet.
        assert!(!w.expired(t0 + Duration::from_secs(60), None));
    }

    #[test]
    fn channel_table_aligns_columns_and_marks_unknowns() {
        let t = channel_table(&[
            info("news", 1280, 720, 29_970, 2628),
            info("x", 0, 0, 0, 96),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME  CODEC  RESOLUTION  FPS    KBIT/S");
        assert_eq!(lines[1], "news  h264   1280x720    29.97  2628");
        assert_eq!(lines[2], "x     h264   ?           ?      96");
    }

    #[test]
    fn no_pop_answer_ends_a_watch_with_the_no_pop_outcome() {
        let t0 = Instant::now();
        let (_trigger, interrupt) = Shutdown::new();
        let mut machine = client_machine(vec!["127.0.0.1:9".parse().unwrap()], 1);
        let mut hooks =
            HeadlessHooks::new(Task::Watch("x".into()), t0, None, interrupt, None, None);
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(5)),
            Flow::Continue
        );
        assert_eq!(hooks.on_tick(&mut machine, t0 + POP_WAIT), Flow::Stop);
        assert!(matches!(hooks.into_outcome().0, Some(Outcome::NoPop)));
    }

    #[test]
    fn the_duration_ends_the_watch_after_one_more_driver_round() {
        let t0 = Instant::now();
        let (_trigger, interrupt) = Shutdown::new();
        let mut machine = client_machine(vec!["127.0.0.1:9".parse().unwrap()], 1);
        machine.handle_command(t0, ClientCommand::Watch("x".into()));
        let mut hooks = HeadlessHooks::new(
            Task::Watch("x".into()),
            t0,
            Some(Duration::from_secs(3)),
            interrupt,
            None,
            None,
        );
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(1)),
            Flow::Continue
        );
        // Deadline: finish + unwatch, keep running one round so the unwatch is sent.
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(3)),
            Flow::Continue
        );
        assert_eq!(machine.watching().count(), 0, "watch stopped");
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_millis(3100)),
            Flow::Stop
        );
        match hooks.into_outcome().0 {
            Some(Outcome::Watched { reason, report }) => {
                assert_eq!(reason, EndReason::Duration);
                assert_eq!(report.media_packets, 0);
                assert_eq!(report.duration_ms, 3000.0);
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    #[test]
    fn ctrl_c_ends_the_watch_like_the_deadline() {
        let t0 = Instant::now();
        let (trigger, interrupt) = Shutdown::new();
        let mut machine = client_machine(vec!["127.0.0.1:9".parse().unwrap()], 1);
        machine.handle_command(t0, ClientCommand::Watch("x".into()));
        let mut hooks =
            HeadlessHooks::new(Task::Watch("x".into()), t0, None, interrupt, None, None);
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(1)),
            Flow::Continue
        );
        trigger.fire();
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(2)),
            Flow::Continue
        );
        assert_eq!(
            hooks.on_tick(&mut machine, t0 + Duration::from_secs(2)),
            Flow::Stop
        );
        assert!(matches!(
            hooks.into_outcome().0,
            Some(Outcome::Watched {
                reason: EndReason::Interrupted,
                ..
            })
        ));
    }

    #[test]
    fn media_goes_to_the_recording_and_a_closed_player_ends_the_watch() {
        let t0 = Instant::now();
        let dir = std::env::temp_dir().join(format!("meshcast-headless-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec_path = dir.join("r.ts");
        let recorder = Recorder::create(&rec_path).unwrap();
        let (sink, rx) = MediaSink::pair(8);
        let (_trigger, interrupt) = Shutdown::new();
        let mut machine = client_machine(vec!["127.0.0.1:9".parse().unwrap()], 1);
        machine.handle_command(t0, ClientCommand::Watch("x".into()));
        let mut hooks = HeadlessHooks::new(
            Task::Watch("x".into()),
            t0,
            None,
            interrupt,
            Some(recorder),
            Some(sink),
        );
        let media = |channel: &str, byte: u8| ClientEvent::Media {
            channel: channel.into(),
            seq: 0,
            payload: vec![byte; 188],
        };
        hooks.on_event(&mut machine, t0, media("x", 1));
        hooks.on_event(&mut machine, t0, media("other", 2));
        drop(rx);
        hooks.on_event(&mut machine, t0, media("x", 3));
        assert_eq!(hooks.on_tick(&mut machine, t0), Flow::Stop);
        let (outcome, recorder, _) = hooks.into_outcome();
        assert!(matches!(
            outcome,
            Some(Outcome::Watched {
                reason: EndReason::PlayerClosed,
                ..
            })
        ));
        assert_eq!(recorder.unwrap().finish().unwrap(), 376);
        let bytes = std::fs::read(&rec_path).unwrap();
        assert_eq!(&bytes[..188], &[1; 188][..]);
        assert_eq!(&bytes[188..], &[3; 188][..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
