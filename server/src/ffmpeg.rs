//! One supervised FFmpeg child per channel, producing MPEG-TS in real time.
//!
//! The server does not decode or encode video itself: for every channel of
//! the catalogue it runs `ffmpeg`, which reads the channel's file (looped
//! forever) or generates a test pattern, encodes it to H.264 + AAC and writes
//! an MPEG transport stream to its stdout. Three properties matter:
//!
//! * **Real time.** `-re` (before *each* input) makes FFmpeg read at the
//!   native frame rate, so the stream is live: the mesh distributes what is
//!   "on air" now instead of a file as fast as the disk can read it. The
//!   output has a constant frame rate (`-fps_mode cfr`) and fixed GOPs
//!   (`-g`/`-keyint_min`, no scene-cut keyframes) so a viewer joining at any
//!   time waits at most one GOP (2 s by default) for a keyframe, and a
//!   recording of N seconds holds N × fps frames.
//! * **1316-byte chunks.** TS packets are 188 bytes. The [`Supervisor`] cuts
//!   stdout into chunks of exactly 7 packets = 1316 bytes: one chunk becomes
//!   one media datagram, and 1316 bytes plus the mesh header plus UDP/IP
//!   headers stays under an Ethernet MTU of 1500, so datagrams are never
//!   fragmented (a lost fragment would lose the whole datagram). Chunks start
//!   on a packet boundary (`0x47` sync byte); if the stream is ever
//!   misaligned the reader resynchronises and counts the skipped bytes. A
//!   partial chunk is sent if it waited [`PARTIAL_FLUSH_AFTER`] (20 ms)
//!   without completing, to keep latency low.
//! * **Never give up.** Whenever the child exits (crash, bad file, killed),
//!   the exit status and its last stderr lines are logged and it is restarted
//!   after an exponential backoff (0.5 s, 1 s, 2 s … capped at 30 s; the
//!   backoff resets once a child ran fine for 30 s). Children are killed when
//!   the supervisor is stopped or dropped, and on Linux also when the server
//!   process dies (`PR_SET_PDEATHSIG`), so no orphaned encoder keeps running.
//!
//! [`check_installed_at`] verifies at start-up that FFmpeg exists and that the
//! H.264 encoder really encodes (a tiny test encode, not a look at the
//! encoder list, which can advertise encoders that then fail at runtime).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::{ChannelInput, ChannelSpec};

/// Size of one MPEG-TS packet.
pub const TS_PACKET_SIZE: usize = 188;
/// First byte of every MPEG-TS packet.
pub const TS_SYNC_BYTE: u8 = 0x47;
/// TS packets per chunk (and per media datagram).
pub const PACKETS_PER_CHUNK: usize = 7;
/// Size of a full chunk: 7 × 188 = 1316 bytes.
pub const CHUNK_SIZE: usize = TS_PACKET_SIZE * PACKETS_PER_CHUNK;
/// A partial chunk is sent once it has waited this long.
pub const PARTIAL_FLUSH_AFTER: Duration = Duration::from_millis(20);
/// First restart delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran at least this long resets the backoff.
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Number of stderr lines kept for the exit report.
pub const STDERR_TAIL_LINES: usize = 20;
/// Time limit of each step of [`check_installed_at`].
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The FFmpeg that [`check_installed_at`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegInfo {
    /// The binary that was run.
    pub path: PathBuf,
    /// Version string, e.g. `5.1.9-0+deb12u1`.
    pub version: String,
    /// The H.264 encoder that passed the test encode.
    pub encoder: String,
}

/// Why FFmpeg cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FfmpegMissing {
    /// The binary is not there.
    #[error(
        "ffmpeg not found {where_}: install it with `apt-get install ffmpeg` (Debian/Ubuntu); \
         meshcast needs an FFmpeg build with libx264 (H.264 encoder)",
        where_ = describe_location(.path)
    )]
    NotFound {
        /// The binary that was looked for.
        path: PathBuf,
    },
    /// The binary exists but `-version` failed.
    #[error("`{} -version` failed ({reason}); reinstall FFmpeg (`apt-get install ffmpeg` on Debian/Ubuntu)", .path.display())]
    Broken {
        /// The binary that was run.
        path: PathBuf,
        /// Exit status or OS error, plus stderr tail.
        reason: String,
    },
    /// The test encode with the H.264 encoder failed.
    #[error(
        "ffmpeg is installed but a test encode with the `{encoder}` encoder failed ({reason}); \
         meshcast needs an FFmpeg build with a working libx264 (Debian/Ubuntu: `apt-get install ffmpeg`)"
    )]
    EncoderFailed {
        /// The encoder that was tried.
        encoder: String,
        /// Exit status plus stderr tail.
        reason: String,
    },
}

fn describe_location(path: &Path) -> String {
    if path.components().count() > 1 {
        format!("at {}", path.display())
    } else {
        "on PATH".to_string()
    }
}

/// [`check_installed_at`] for `ffmpeg` from `PATH` and libx264.
#[cfg(test)]
pub fn check_installed() -> Result<FfmpegInfo, FfmpegMissing> {
    check_installed_at(Path::new("ffmpeg"), "libx264")
}

/// Checks that `ffmpeg` runs and can really encode with `encoder` (a test encode, not a look
/// at the encoder list: a listed hardware encoder may fail at run time). Blocking (a few
/// hundred milliseconds); call it before starting the runtime or through `spawn_blocking`.
pub fn check_installed_at(ffmpeg: &Path, encoder: &str) -> Result<FfmpegInfo, FfmpegMissing> {
    let version_out = match run_with_timeout(ffmpeg, ["-hide_banner", "-version"]) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(FfmpegMissing::NotFound {
                path: ffmpeg.to_path_buf(),
            });
        }
        Err(err) => {
            return Err(FfmpegMissing::Broken {
                path: ffmpeg.to_path_buf(),
                reason: err.to_string(),
            });
        }
        Ok(out) => out,
    };
    if !version_out.status.success() {
        return Err(FfmpegMissing::Broken {
            path: ffmpeg.to_path_buf(),
            reason: format!("{}: {}", version_out.status, tail(&version_out.stderr)),
        });
    }
    // "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) ..."
    let version = String::from_utf8_lossy(&version_out.stdout)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("unknown")
        .to_string();

    let encode_args = [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=5",
        "-frames:v",
        "2",
        "-c:v",
        encoder,
        "-pix_fmt",
        "yuv420p",
        "-f",
        "null",
        "-",
    ];
    match run_with_timeout(ffmpeg, encode_args) {
        Err(err) => Err(FfmpegMissing::EncoderFailed {
            encoder: encoder.to_string(),
            reason: err.to_string(),
        }),
        Ok(out) if !out.status.success() => Err(FfmpegMissing::EncoderFailed {
            encoder: encoder.to_string(),
            reason: format!("{}: {}", out.status, tail(&out.stderr)),
        }),
        Ok(_) => Ok(FfmpegInfo {
            path: ffmpeg.to_path_buf(),
            version,
            encoder: encoder.to_string(),
        }),
    }
}

/// Last few lines of a program's stderr, on one line.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "no error output".to_string()
    } else {
        joined
    }
}

/// Runs a short command, killing it after [`CHECK_TIMEOUT`].
fn run_with_timeout<I, S>(program: &Path, args: I) -> std::io::Result<std::process::Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_thread = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_thread = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{} did not finish within {CHECK_TIMEOUT:?}",
                    program.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    })
}

/// How channels are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSettings {
    /// The FFmpeg binary (default `ffmpeg`, looked up on `PATH`).
    pub ffmpeg: PathBuf,
    /// Video encoder (default `libx264`).
    pub encoder: String,
    /// x264 preset (default `veryfast`).
    pub preset: String,
    /// x264 tune (default `zerolatency`: no B-frames, no lookahead).
    pub tune: Option<String>,
    /// Video bitrate (also the VBV max rate; the buffer is twice that).
    pub video_bitrate_kbps: u32,
    /// AAC bitrate.
    pub audio_bitrate_kbps: u32,
    /// Keyframe interval in frames (fixed GOP).
    pub gop_frames: u32,
    /// Test pattern width.
    pub width: u16,
    /// Test pattern height.
    pub height: u16,
    /// Test pattern frame rate.
    pub fps: u32,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            ffmpeg: PathBuf::from("ffmpeg"),
            encoder: "libx264".to_string(),
            preset: "veryfast".to_string(),
            tune: Some("zerolatency".to_string()),
            video_bitrate_kbps: 2500,
            audio_bitrate_kbps: 128,
            gop_frames: 60,
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// The FFmpeg argument vector (without the program name) for one channel.
pub fn command_line(spec: &ChannelSpec, settings: &EncodeSettings) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-v", "error"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let push = |args: &mut Vec<String>, items: &[&str]| {
        args.extend(items.iter().map(|s| s.to_string()));
    };
    match &spec.input {
        ChannelInput::File(path) => {
            push(&mut args, &["-re", "-stream_loop", "-1", "-i"]);
            args.push(path.to_string_lossy().into_owned());
            push(&mut args, &["-map", "0:v:0", "-map", "0:a:0?"]);
        }
        ChannelInput::TestPattern => {
            push(&mut args, &["-re", "-f", "lavfi", "-i"]);
            args.push(format!(
                "testsrc2=size={}x{}:rate={}",
                settings.width, settings.height, settings.fps
            ));
            push(&mut args, &["-re", "-f", "lavfi", "-i"]);
            args.push("sine=frequency=440:sample_rate=48000".to_string());
            push(&mut args, &["-map", "0:v:0", "-map", "1:a:0"]);
        }
    }
    let vb = settings.video_bitrate_kbps;
    let gop = settings.gop_frames.max(1).to_string();
    push(
        &mut args,
        &["-c:v", &settings.encoder, "-preset", &settings.preset],
    );
    if let Some(tune) = &settings.tune {
        push(&mut args, &["-tune", tune]);
    }
    push(
        &mut args,
        &[
            "-b:v",
            &format!("{vb}k"),
            "-maxrate",
            &format!("{vb}k"),
            "-bufsize",
            &format!("{}k", u64::from(vb) * 2),
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            // Duplicate/drop frames so the output rate is constant (FFmpeg 5.1
            // spelling; `-vsync` is deprecated there).
            "-fps_mode",
            "cfr",
        ],
    );
    if spec.input == ChannelInput::TestPattern {
        push(&mut args, &["-r", &settings.fps.to_string()]);
    }
    push(
        &mut args,
        &[
            "-c:a",
            "aac",
            "-b:a",
            &format!("{}k", settings.audio_bitrate_kbps),
            "-ar",
            "48000",
            "-ac",
            "2",
            "-f",
            "mpegts",
            "-mpegts_flags",
            "+resend_headers",
            "-flush_packets",
            "1",
            "pipe:1",
        ],
    );
    args
}

/// A piece of a channel's transport stream: 1 to 7 whole TS packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Channel name.
    pub channel: String,
    /// `n × 188` bytes (1 ≤ n ≤ 7), each packet starting with `0x47`.
    pub data: Vec<u8>,
}

/// Cuts a byte stream into whole TS packets grouped by 7, resynchronising on
/// the sync byte when needed.
#[derive(Debug, Default)]
struct TsAligner {
    /// Bytes not yet turned into packets.
    raw: Vec<u8>,
    /// Whole packets of the chunk being built (fewer than 7).
    pending: Vec<u8>,
    /// Bytes dropped while looking for a sync byte.
    skipped: u64,
}

impl TsAligner {
    /// Offset of the first plausible packet start in `buf`: a sync byte
    /// confirmed by another one a packet later, or unconfirmable because the
    /// buffer ends before that.
    fn find_sync(buf: &[u8]) -> Option<usize> {
        (0..buf.len()).find(|&i| {
            buf[i] == TS_SYNC_BYTE
                && buf
                    .get(i + TS_PACKET_SIZE)
                    .is_none_or(|&b| b == TS_SYNC_BYTE)
        })
    }

    /// Adds bytes; every chunk completed by them is appended to `out`.
    fn push(&mut self, data: &[u8], out: &mut Vec<Vec<u8>>) {
        self.raw.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = &self.raw[pos..];
            match Self::find_sync(rest) {
                None => {
                    self.skipped += rest.len() as u64;
                    pos = self.raw.len();
                    break;
                }
                Some(off) => {
                    self.skipped += off as u64;
                    pos += off;
                }
            }
            if self.raw.len() - pos < TS_PACKET_SIZE {
                break;
            }
            self.pending
                .extend_from_slice(&self.raw[pos..pos + TS_PACKET_SIZE]);
            pos += TS_PACKET_SIZE;
            if self.pending.len() == CHUNK_SIZE {
                out.push(std::mem::replace(
                    &mut self.pending,
                    Vec::with_capacity(CHUNK_SIZE),
                ));
            }
        }
        self.raw.drain(..pos);
    }

    /// Number of whole packets waiting in the unfinished chunk.
    fn pending_packets(&self) -> usize {
        self.pending.len() / TS_PACKET_SIZE
    }

    /// Takes the unfinished chunk, if it has at least one packet.
    fn take_partial(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            None
        } else {
            Some(std::mem::replace(
                &mut self.pending,
                Vec::with_capacity(CHUNK_SIZE),
            ))
        }
    }

    /// End of stream: returns the unfinished chunk and counts an incomplete
    /// trailing packet as skipped.
    fn finish(&mut self) -> Option<Vec<u8>> {
        self.skipped += self.raw.len() as u64;
        self.raw.clear();
        self.take_partial()
    }
}

/// Restart delays: 0.5 s, 1 s, 2 s, … capped at 30 s, back to 0.5 s after a
/// child that ran for [`HEALTHY_RUN`].
#[derive(Debug, Clone)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: BACKOFF_INITIAL,
        }
    }

    /// Delay before the next start, given how long the last child ran.
    fn delay_after(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY_RUN {
            self.next = BACKOFF_INITIAL;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// Counters shared between a [`Supervisor`] and its task.
#[derive(Debug, Default)]
struct Stats {
    restarts: AtomicU32,
    /// Pid of the running child, 0 when none.
    pid: AtomicU32,
    skipped_bytes: AtomicU64,
    chunks: AtomicU64,
}

/// Keeps one FFmpeg child running for a channel and forwards its output as
/// [`Chunk`]s.
///
/// Must be created inside a Tokio runtime. [`Supervisor::stop`] kills the
/// child and waits for it; dropping the supervisor kills it too (the
/// supervising task is aborted and the child, spawned with `kill_on_drop`, is
/// killed and later reaped by Tokio).
pub struct Supervisor {
    channel: String,
    stats: Arc<Stats>,
    stop_tx: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("channel", &self.channel)
            .field("pid", &self.child_pid())
            .field("restarts", &self.restarts())
            .field("chunks", &self.chunks_sent())
            .field("skipped_bytes", &self.skipped_bytes())
            .finish()
    }
}

impl Supervisor {
    /// Starts supervising `spec`: spawns FFmpeg now and restarts it whenever
    /// it exits. Chunks go to `tx`; if the receiver is dropped the child is
    /// killed and supervision ends. Sending waits when `tx` is full
    /// (backpressure on the encoder rather than corrupting the stream).
    pub fn spawn(
        spec: ChannelSpec,
        settings: EncodeSettings,
        tx: mpsc::Sender<Chunk>,
    ) -> Supervisor {
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let channel = spec.name.clone();
        let task = tokio::spawn(supervise(spec, settings, tx, Arc::clone(&stats), stop_rx));
        Supervisor {
            channel,
            stats,
            stop_tx: Some(stop_tx),
            task: Some(task),
        }
    }

    /// The supervised channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// How many times the child was restarted after exiting.
    pub fn restarts(&self) -> u32 {
        self.stats.restarts.load(Ordering::Relaxed)
    }

    /// Pid of the currently running child, if any.
    pub fn child_pid(&self) -> Option<u32> {
        match self.stats.pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Bytes dropped while resynchronising on the TS sync byte (0 for a
    /// healthy FFmpeg).
    pub fn skipped_bytes(&self) -> u64 {
        self.stats.skipped_bytes.load(Ordering::Relaxed)
    }

    /// Chunks sent so far.
    pub fn chunks_sent(&self) -> u64 {
        self.stats.chunks.load(Ordering::Relaxed)
    }

    /// Kills the child, waits for it to be reaped and ends supervision.
    pub async fn stop(mut self) {
        if let Some(stop_tx) = self.stop_tx.take() {
            let _ = stop_tx.send(true);
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && err.is_panic()
        {
            tracing::error!(channel = %self.channel, "ffmpeg supervisor task panicked");
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropping the task's future drops the `Child`, which was spawned
            // with `kill_on_drop(true)`: SIGKILL, then Tokio reaps it.
            task.abort();
        }
    }
}

/// How one child run ended.
enum RunEnd {
    /// `stop()` was called; the child is dead and reaped.
    Stopped,
    /// The chunk receiver is gone; the child is dead and reaped.
    ReceiverGone,
    /// The child could not be started.
    SpawnFailed(std::io::Error),
    /// The child exited on its own.
    Exited {
        status: std::io::Result<ExitStatus>,
        stderr_tail: Vec<String>,
    },
}

/// The supervising task: run, log, back off, repeat.
async fn supervise(
    spec: ChannelSpec,
    settings: EncodeSettings,
    tx: mpsc::Sender<Chunk>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let args = command_line(&spec, &settings);
    let name = spec.name.as_str();
    tracing::info!(channel = %name, program = %settings.ffmpeg.display(), ?args, "starting ffmpeg");
    let mut backoff = Backoff::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let end = run_once(name, &settings.ffmpeg, &args, &tx, &stats, &mut stop).await;
        let ran_for = started.elapsed();
        let delay = backoff.delay_after(ran_for);
        match end {
            RunEnd::Stopped => return,
            RunEnd::ReceiverGone => {
                tracing::info!(channel = %name, "chunk receiver closed; ffmpeg stopped");
                return;
            }
            RunEnd::SpawnFailed(err) => {
                tracing::warn!(
                    channel = %name,
                    program = %settings.ffmpeg.display(),
                    %err,
                    restart_in = ?delay,
                    "cannot start ffmpeg"
                );
            }
            RunEnd::Exited {
                status,
                stderr_tail,
            } => {
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("unknown ({e})"),
                };
                tracing::warn!(
                    channel = %name,
                    %status,
                    ?ran_for,
                    restart_in = ?delay,
                    last_stderr = %stderr_tail.join(" | "),
                    "ffmpeg exited"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
            _ = tx.closed() => return,
        }
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(channel = %name, restarts = stats.restarts.load(Ordering::Relaxed), "restarting ffmpeg");
    }
}

/// Kills and reaps a child.
async fn kill_child(child: &mut Child, stats: &Stats) {
    let _ = child.kill().await;
    stats.pid.store(0, Ordering::Relaxed);
}

/// Runs one child until it exits or supervision stops.
async fn run_once(
    name: &str,
    program: &Path,
    args: &[String],
    tx: &mpsc::Sender<Chunk>,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> RunEnd {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    meshcast_io::process::die_with_parent(cmd.as_std_mut());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => return RunEnd::SpawnFailed(err),
    };
    stats.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    let stderr_task = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(log_stderr(name.to_string(), stderr, Arc::clone(&tail))));
    let Some(stdout) = child.stdout.take() else {
        kill_child(&mut child, stats).await;
        return RunEnd::SpawnFailed(std::io::Error::other("child stdout was not captured"));
    };

    let pumped = tokio::select! {
        _ = stop.changed() => None,
        end = pump(name, stdout, tx, stats) => Some(end),
    };
    let status = match pumped {
        None => {
            kill_child(&mut child, stats).await;
            return RunEnd::Stopped;
        }
        Some(PumpEnd::ReceiverGone) => {
            kill_child(&mut child, stats).await;
            return RunEnd::ReceiverGone;
        }
        Some(PumpEnd::Eof) | Some(PumpEnd::ReadError(_)) => {
            if let Some(PumpEnd::ReadError(err)) = &pumped {
                tracing::warn!(channel = %name, %err, "error reading ffmpeg output; killing it");
                let _ = child.start_kill();
            }
            tokio::select! {
                _ = stop.changed() => {
                    kill_child(&mut child, stats).await;
                    return RunEnd::Stopped;
                }
                status = child.wait() => status,
            }
        }
    };
    stats.pid.store(0, Ordering::Relaxed);
    if let Some(task) = stderr_task {
        // stderr reaches EOF when the child is gone; the timeout only guards
        // against a grandchild holding the pipe open.
        if tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .is_err()
        {
            tracing::debug!(channel = %name, "ffmpeg stderr still open after exit");
        }
    }
    let stderr_tail = match tail.lock() {
        Ok(lines) => lines.iter().cloned().collect(),
        Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
    };
    RunEnd::Exited {
        status,
        stderr_tail,
    }
}

/// Logs every stderr line of the child and keeps the last ones.
async fn log_stderr(name: String, stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text.is_empty() {
                    continue;
                }
                tracing::warn!(channel = %name, "ffmpeg: {text}");
                let mut lines = match tail.lock() {
                    Ok(lines) => lines,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if lines.len() == STDERR_TAIL_LINES {
                    lines.pop_front();
                }
                lines.push_back(text);
            }
        }
    }
}

/// How the stdout pump ended.
enum PumpEnd {
    Eof,
    ReadError(std::io::Error),
    ReceiverGone,
}

/// Reads the child's stdout and sends aligned chunks until EOF.
async fn pump(
    name: &str,
    mut stdout: ChildStdout,
    tx: &mpsc::Sender<Chunk>,
    stats: &Stats,
) -> PumpEnd {
    let mut aligner = TsAligner::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut full = Vec::new();
    // When the unfinished chunk must be sent at the latest.
    let mut flush_at: Option<tokio::time::Instant> = None;
    let send = |data: Vec<u8>| {
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        tx.send(Chunk {
            channel: name.to_string(),
            data,
        })
    };
    loop {
        // `read` is cancel-safe: a timed-out read loses no bytes.
        let read = match flush_at {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, stdout.read(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => {
                        flush_at = None;
                        if let Some(data) = aligner.take_partial()
                            && send(data).await.is_err()
                        {
                            return PumpEnd::ReceiverGone;
                        }
                        continue;
                    }
                }
            }
            None => stdout.read(&mut buf).await,
        };
        let n = match read {
            Ok(0) => {
                let before = aligner.skipped;
                let last = aligner.finish();
                stats
                    .skipped_bytes
                    .fetch_add(aligner.skipped - before, Ordering::Relaxed);
                if let Some(data) = last
                    && send(data).await.is_err()
                {
                    return PumpEnd::ReceiverGone;
                }
                return PumpEnd::Eof;
            }
            Ok(n) => n,
            Err(err) => return PumpEnd::ReadError(err),
        };
        let before = aligner.skipped;
        aligner.push(&buf[..n], &mut full);
        let skipped = aligner.skipped - before;
        if skipped > 0 {
            stats.skipped_bytes.fetch_add(skipped, Ordering::Relaxed);
            tracing::warn!(
                channel = %name,
                skipped,
                total = aligner.skipped,
                "ffmpeg output was not aligned on TS packets; resynchronised"
            );
        }
        let completed = !full.is_empty();
        for data in full.drain(..) {
            if send(data).await.is_err() {
                return PumpEnd::ReceiverGone;
            }
        }
        if aligner.pending_packets() == 0 {
            flush_at = None;
        } else if completed || flush_at.is_none() {
            flush_at = Some(tokio::time::Instant::now() + PARTIAL_FLUSH_AFTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PATTERN: &str = crate::catalog::TEST_PATTERN_NAME;

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("meshcast-ffmpeg-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ffmpeg_on_path() -> bool {
        let found = std::process::Command::new("ffmpeg")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("ffmpeg not on PATH: skipping test that needs it");
        }
        found
    }

    /// Small, cheap settings for tests with the real encoder.
    fn light_settings() -> EncodeSettings {
        EncodeSettings {
            preset: "ultrafast".to_string(),
            video_bitrate_kbps: 300,
            audio_bitrate_kbps: 64,
            gop_frames: 30,
            width: 320,
            height: 180,
            fps: 15,
            ..EncodeSettings::default()
        }
    }

    fn packet(tag: u8) -> Vec<u8> {
        let mut p = vec![tag; TS_PACKET_SIZE];
        p[0] = TS_SYNC_BYTE;
        p
    }

    fn assert_aligned(data: &[u8]) {
        assert!(!data.is_empty(), "empty chunk");
        assert!(data.len() <= CHUNK_SIZE, "chunk of {} bytes", data.len());
        assert_eq!(
            data.len() % TS_PACKET_SIZE,
            0,
            "chunk of {} bytes",
            data.len()
        );
        for (i, p) in data.chunks(TS_PACKET_SIZE).enumerate() {
            assert_eq!(p[0], TS_SYNC_BYTE, "packet {i} does not start with 0x47");
        }
    }

    fn process_gone(pid: u32) -> bool {
        // Gone, or a zombie waiting for Tokio's reaper (already dead).
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
        }
    }

    /// Waits (polling) until `cond` holds, panicking after `limit`.
    async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn default_settings() {
        let s = EncodeSettings::default();
        assert_eq!(s.ffmpeg, PathBuf::from("ffmpeg"));
        assert_eq!(s.encoder, "libx264");
        assert_eq!((s.video_bitrate_kbps, s.audio_bitrate_kbps), (2500, 128));
        assert_eq!(s.gop_frames, 2 * s.fps);
        assert_eq!((s.width, s.height, s.fps), (1280, 720, 30));
        assert_eq!(s.preset, "veryfast");
        assert_eq!(s.tune.as_deref(), Some("zerolatency"));
        assert_eq!(CHUNK_SIZE, 1316);
    }

    /// Position of `needle` as a whole argument.
    fn index_of(args: &[String], needle: &str) -> Option<usize> {
        args.iter().position(|a| a == needle)
    }

    /// Value following the flag `flag`.
    fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        index_of(args, flag)
            .and_then(|i| args.get(i + 1))
            .map(|s| s.as_str())
    }

    #[test]
    fn test_pattern_command_line() {
        let args = command_line(&ChannelSpec::test_pattern(), &EncodeSettings::default());
        // -re right before each lavfi input.
        let inputs: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "-i")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(inputs.len(), 2, "{args:?}");
        for i in inputs {
            assert_eq!(&args[i - 3..i], ["-re", "-f", "lavfi"], "{args:?}");
        }
        assert!(args.contains(&"testsrc2=size=1280x720:rate=30".to_string()));
        assert!(args.contains(&"sine=frequency=440:sample_rate=48000".to_string()));
        assert_eq!(value_of(&args, "-c:v"), Some("libx264"));
        assert_eq!(value_of(&args, "-preset"), Some("veryfast"));
        assert_eq!(value_of(&args, "-tune"), Some("zerolatency"));
        assert_eq!(value_of(&args, "-b:v"), Some("2500k"));
        assert_eq!(value_of(&args, "-maxrate"), Some("2500k"));
        assert_eq!(value_of(&args, "-bufsize"), Some("5000k"));
        assert_eq!(value_of(&args, "-g"), Some("60"));
        assert_eq!(value_of(&args, "-keyint_min"), Some("60"));
        assert_eq!(value_of(&args, "-sc_threshold"), Some("0"));
        assert_eq!(value_of(&args, "-fps_mode"), Some("cfr"));
        assert_eq!(value_of(&args, "-r"), Some("30"));
        assert_eq!(value_of(&args, "-c:a"), Some("aac"));
        assert_eq!(value_of(&args, "-b:a"), Some("128k"));
        assert_eq!(value_of(&args, "-ar"), Some("48000"));
        // MPEG-TS on stdout, flushed packet by packet.
        assert_eq!(
            &args[args.len() - 7..],
            [
                "-f",
                "mpegts",
                "-mpegts_flags",
                "+resend_headers",
                "-flush_packets",
                "1",
                "pipe:1"
            ]
        );
        assert_eq!(&args[..4], ["-hide_banner", "-nostdin", "-v", "error"]);
        assert!(!args.iter().any(|a| a == "ffmpeg"));
    }

    #[test]
    fn file_command_line() {
        let spec = ChannelSpec {
            name: "movie".to_string(),
            input: ChannelInput::File(PathBuf::from("/videos/my movie.mkv")),
        };
        let settings = EncodeSettings {
            video_bitrate_kbps: 1000,
            gop_frames: 50,
            ..EncodeSettings::default()
        };
        let args = command_line(&spec, &settings);
        let i = index_of(&args, "-i").expect("-i");
        assert_eq!(
            &args[i - 3..=i + 1],
            ["-re", "-stream_loop", "-1", "-i", "/videos/my movie.mkv"]
        );
        assert!(!args.iter().any(|a| a == "lavfi"), "{args:?}");
        assert_eq!(args.iter().filter(|a| *a == "-i").count(), 1);
        let maps: Vec<&str> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "-map")
            .map(|(i, _)| args[i + 1].as_str())
            .collect();
        assert_eq!(maps, ["0:v:0", "0:a:0?"]);
        assert_eq!(value_of(&args, "-b:v"), Some("1000k"));
        assert_eq!(value_of(&args, "-bufsize"), Some("2000k"));
        assert_eq!(value_of(&args, "-g"), Some("50"));
        assert_eq!(value_of(&args, "-fps_mode"), Some("cfr"));
        // The file's own frame rate is kept.
        assert_eq!(value_of(&args, "-r"), None);
        assert_eq!(args.last().map(String::as_str), Some("pipe:1"));
    }

    #[test]
    fn aligner_groups_seven_packets() {
        let mut a = TsAligner::default();
        let mut out = Vec::new();
        let stream: Vec<u8> = (0..16u8).flat_map(packet).collect();
        // Feed in awkward pieces.
        for piece in stream.chunks(100) {
            a.push(piece, &mut out);
        }
        assert_eq!(out.len(), 2);
        for c in &out {
            assert_eq!(c.len(), CHUNK_SIZE);
            assert_aligned(c);
        }
        assert_eq!(out[1][TS_PACKET_SIZE + 1], 8);
        assert_eq!(a.pending_packets(), 2);
        let partial = a.take_partial().expect("partial");
        assert_eq!(partial.len(), 2 * TS_PACKET_SIZE);
        assert_eq!(partial[1], 14);
        assert_eq!(a.take_partial(), None);
        assert_eq!(a.skipped, 0);
    }

    #[test]
    fn aligner_resynchronises() {
        let mut a = TsAligner::default();
        let mut out = Vec::new();
        let mut stream = b"garbage G with a fake sync byte\n".to_vec();
        let junk = stream.len() as u64;
        stream.extend((1..=7u8).flat_map(packet));
        a.push(&stream, &mut out);
        assert_eq!(out.len(), 1);
        assert_aligned(&out[0]);
        assert_eq!(out[0][1], 1);
        assert_eq!(a.skipped, junk);

        // Bytes lost in the middle of a packet: the broken packet is dropped.
        let mut b = TsAligner::default();
        let mut out = Vec::new();
        let mut stream: Vec<u8> = packet(1);
        stream.extend(&packet(2)[..100]);
        stream.extend((3..=9u8).flat_map(packet));
        b.push(&stream, &mut out);
        assert_eq!(out.len(), 1);
        assert_aligned(&out[0]);
        let tags: Vec<u8> = out[0].chunks(TS_PACKET_SIZE).map(|p| p[1]).collect();
        assert_eq!(tags, [1, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b.skipped, 100);
        // Trailing half packet at EOF.
        b.push(&packet(10)[..50], &mut out);
        assert_eq!(b.finish().map(|p| p.len()), Some(TS_PACKET_SIZE));
        assert_eq!(b.skipped, 150);

        // No sync byte at all: everything skipped, nothing kept.
        let mut c = TsAligner::default();
        c.push(&[0u8; 1000], &mut out);
        assert_eq!(c.skipped, 1000);
        assert!(c.raw.is_empty());
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new();
        let quick = Duration::from_millis(10);
        let delays: Vec<Duration> = (0..9).map(|_| b.delay_after(quick)).collect();
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.delay_after(HEALTHY_RUN), BACKOFF_INITIAL);
        assert_eq!(b.delay_after(quick), Duration::from_secs(1));
    }

    #[test]
    fn check_installed_works_here() {
        if !ffmpeg_on_path() {
            return;
        }
        let info = check_installed().expect("ffmpeg with libx264");
        assert_eq!(info.encoder, "libx264");
        assert!(
            !info.version.is_empty() && info.version != "unknown",
            "{info:?}"
        );
    }

    #[test]
    fn check_installed_reports_missing_binary() {
        let err = check_installed_at(Path::new("meshcast-no-such-ffmpeg"), "libx264")
            .expect_err("not installed");
        let msg = err.to_string();
        assert!(matches!(err, FfmpegMissing::NotFound { .. }), "{msg}");
        assert!(
            msg.starts_with(
                "ffmpeg not found on PATH: install it with `apt-get install ffmpeg` (Debian/Ubuntu)"
            ),
            "{msg}"
        );
        assert!(msg.contains("libx264"), "{msg}");
        let err = check_installed_at(Path::new("/nonexistent/bin/ffmpeg"), "libx264")
            .expect_err("not installed");
        assert!(
            err.to_string().contains("at /nonexistent/bin/ffmpeg"),
            "{err}"
        );
    }

    #[test]
    fn check_installed_reports_broken_encoder() {
        if !ffmpeg_on_path() {
            return;
        }
        let err = check_installed_at(Path::new("ffmpeg"), "meshcast_no_such_encoder")
            .expect_err("unknown encoder");
        let msg = err.to_string();
        assert!(matches!(err, FfmpegMissing::EncoderFailed { .. }), "{msg}");
        assert!(msg.contains("`meshcast_no_such_encoder`"), "{msg}");
        // The reason includes FFmpeg's own complaint.
        assert!(msg.contains("exit status"), "{msg}");
        assert!(msg.to_lowercase().contains("encoder"), "{msg}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn supervisor_streams_test_pattern() {
        if !ffmpeg_on_path() {
            return;
        }
        let (tx, mut rx) = mpsc::channel(256);
        let sup = Supervisor::spawn(ChannelSpec::test_pattern(), light_settings(), tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut chunks = 0;
        let mut full = 0;
        let mut bytes = 0;
        while chunks < 60 {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, rx.recv())
                .await
                .expect("chunks before the deadline")
                .expect("supervisor alive");
            assert_eq!(chunk.channel, TEST_PATTERN);
            assert_aligned(&chunk.data);
            chunks += 1;
            bytes += chunk.data.len();
            if chunk.data.len() == CHUNK_SIZE {
                full += 1;
            }
        }
        assert!(
            full > 0,
            "no full 1316-byte chunk among {chunks} ({bytes} bytes)"
        );
        assert_eq!(sup.restarts(), 0);
        assert_eq!(sup.skipped_bytes(), 0);
        let pid = sup.child_pid().expect("child running");
        assert!(!process_gone(pid));
        sup.stop().await;
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} still exists after stop()"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn supervisor_streams_a_looped_file() {
        if !ffmpeg_on_path() {
            return;
        }
        let dir = TempDir::new("file");
        let clip = dir.0.join("clip.mp4");
        let status = tokio::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg("testsrc2=size=160x120:rate=25")
            .args([
                "-t",
                "0.5",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&clip)
            .status()
            .await
            .expect("run ffmpeg");
        assert!(status.success());
        let spec = ChannelSpec {
            name: "clip".to_string(),
            input: ChannelInput::File(clip),
        };
        let (tx, mut rx) = mpsc::channel(256);
        let sup = Supervisor::spawn(spec, light_settings(), tx);
        // More than one loop of the half-second clip.
        let mut bytes = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while bytes < 40 * CHUNK_SIZE {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, rx.recv())
                .await
                .expect("chunks before the deadline")
                .expect("supervisor alive");
            assert_eq!(chunk.channel, "clip");
            assert_aligned(&chunk.data);
            bytes += chunk.data.len();
        }
        assert_eq!(sup.restarts(), 0, "the file should loop, not exit");
        sup.stop().await;
    }

    /// Writes an executable fake `ffmpeg` that prints two TS-like packets
    /// and a complaint, then exits 1.
    fn fake_ffmpeg(dir: &TempDir) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.0.join("fake-ffmpeg");
        // 'G' is 0x47, the TS sync byte.
        let script = "#!/bin/sh\n\
                      printf G; head -c 187 /dev/zero\n\
                      printf G; head -c 187 /dev/zero\n\
                      echo 'fake ffmpeg: giving up' >&2\n\
                      exit 1\n";
        std::fs::write(&path, script).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn supervisor_restarts_exiting_child() {
        let dir = TempDir::new("fake");
        let settings = EncodeSettings {
            ffmpeg: fake_ffmpeg(&dir),
            ..EncodeSettings::default()
        };
        let (tx, mut rx) = mpsc::channel(64);
        let sup = Supervisor::spawn(ChannelSpec::test_pattern(), settings, tx);
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while sup.restarts() < 2 {
            assert!(
                Instant::now() < deadline,
                "no second restart before the deadline"
            );
            if let Ok(Some(chunk)) =
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
                received.push(chunk);
            }
        }
        // Each run printed two packets, flushed as partial chunk(s).
        while let Ok(chunk) = rx.try_recv() {
            received.push(chunk);
        }
        assert!(!received.is_empty());
        for chunk in &received {
            assert_aligned(&chunk.data);
            assert!(chunk.data.len() <= 2 * TS_PACKET_SIZE);
        }
        assert_eq!(sup.skipped_bytes(), 0);
        sup.stop().await;
    }

    #[tokio::test]
    async fn supervisor_survives_missing_binary() {
        let settings = EncodeSettings {
            ffmpeg: PathBuf::from("/nonexistent/meshcast/ffmpeg"),
            ..EncodeSettings::default()
        };
        let (tx, _rx) = mpsc::channel(4);
        let sup = Supervisor::spawn(ChannelSpec::test_pattern(), settings, tx);
        wait_until(Duration::from_secs(10), "a restart attempt", || {
            sup.restarts() >= 1
        })
        .await;
        assert_eq!(sup.child_pid(), None);
        tokio::time::timeout(Duration::from_secs(5), sup.stop())
            .await
            .expect("stop() returns promptly during backoff");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_kills_the_child() {
        if !ffmpeg_on_path() {
            return;
        }
        let (tx, mut rx) = mpsc::channel(256);
        let sup = Supervisor::spawn(ChannelSpec::test_pattern(), light_settings(), tx);
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("first chunk")
            .expect("supervisor alive");
        let pid = sup.child_pid().expect("child running");
        drop(sup);
        wait_until(Duration::from_secs(10), "the child to die", || {
            process_gone(pid)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_receiver_stops_the_child() {
        if !ffmpeg_on_path() {
            return;
        }
        let (tx, mut rx) = mpsc::channel(4);
        let sup = Supervisor::spawn(ChannelSpec::test_pattern(), light_settings(), tx);
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("first chunk")
            .expect("supervisor alive");
        let pid = sup.child_pid().expect("child running");
        drop(rx);
        wait_until(Duration::from_secs(10), "the child to be reaped", || {
            sup.child_pid().is_none()
        })
        .await;
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(sup.restarts(), 0);
        sup.stop().await;
    }
}
