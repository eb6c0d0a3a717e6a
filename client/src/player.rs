//! The external video player (mpv or ffplay) reading the live MPEG-TS from its stdin.
//!
//! # Shape
//!
//! [`Player::spawn`] starts the process and a writer task on a tokio runtime. The network side
//! hands payloads to a [`MediaSink`], a bounded queue: it never blocks, and when the player
//! falls behind chunks are dropped at the queue rather than stalling the network loop (a live
//! stream has no use for old video anyway). The writer task owns the child; it ends when the
//! player exits, its stdin breaks, or the [`Player`] handle is dropped (then it kills the
//! child). Once it has ended, [`MediaSink::is_closed`] is true: that is how the caller learns
//! "player closed".
//!
//! # No orphans
//!
//! The child is spawned with `kill_on_drop` (the task or the runtime going away kills it) and,
//! on Linux, `PR_SET_PDEATHSIG = SIGKILL`, so even a crash or a SIGKILL of the client takes
//! the player down. The death signal follows the *thread* that forked: spawn players from a
//! thread that lives as long as the process (the GUI's main thread, or the headless
//! current-thread runtime's thread).

use std::io;
use std::process::Stdio;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

/// Chunks (≤ 1316 bytes each) queued for the player: about a second of a 5 Mbit/s stream.
pub const QUEUE_CHUNKS: usize = 512;

/// How long a player whose stdin broke gets to report its exit status before it is killed.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The `--player` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlayerChoice {
    /// mpv (recommended: lowest latency).
    Mpv,
    /// ffplay from FFmpeg.
    Ffplay,
    /// No player: receive (and record) only.
    None,
}

impl PlayerChoice {
    /// The player to launch, if any.
    pub fn kind(self) -> Option<PlayerKind> {
        match self {
            PlayerChoice::Mpv => Some(PlayerKind::Mpv),
            PlayerChoice::Ffplay => Some(PlayerKind::Ffplay),
            PlayerChoice::None => None,
        }
    }

    /// Name shown in the GUI selector.
    pub fn label(self) -> &'static str {
        match self {
            PlayerChoice::Mpv => "mpv",
            PlayerChoice::Ffplay => "ffplay",
            PlayerChoice::None => "none (stats only)",
        }
    }
}

/// A supported player program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerKind {
    /// mpv.
    Mpv,
    /// ffplay.
    Ffplay,
}

impl PlayerKind {
    /// Executable name looked up on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            PlayerKind::Mpv => "mpv",
            PlayerKind::Ffplay => "ffplay",
        }
    }

    /// Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            PlayerKind::Mpv => "mpv",
            PlayerKind::Ffplay => "ffmpeg",
        }
    }

    /// Arguments that make the player show the live TS arriving on stdin with low latency.
    ///
    /// mpv: `--no-config` so a user's config cannot add buffering; `--profile=low-latency`
    /// (built in since mpv 0.30: no audio buffer, `fflags=+nobuffer`, short probing) when
    /// `low_latency_profile`, otherwise the parts of it that matter spelled out;
    /// `--demuxer-lavf-format=mpegts` skips format probing on a pipe; `--no-input-terminal`
    /// because stdin carries video, not key presses; `--force-window=yes` opens the window
    /// before the first frame so the user sees something is happening. `--gpu-sw` lets the gpu
    /// output accept a software renderer (llvmpipe, VMs, Xvfb): without it mpv 0.35 rejects the
    /// X11/Wayland GL context, falls back to its DRM context and — in a process with no
    /// terminal — ends up closing fd 0, our stream (seen here: "Broken pipe" 0.5 s after
    /// start). On a real GPU the flag changes nothing.
    ///
    /// ffplay: `-f mpegts` forces the demuxer (ffplay has no `-format` option: it rejects it);
    /// `-fflags nobuffer -flags low_delay -framedrop` keep it near the live edge.
    pub fn args(self, channel: &str, low_latency_profile: bool) -> Vec<String> {
        let title = format!("meshcast:{channel}");
        let mut v: Vec<String> = Vec::new();
        match self {
            PlayerKind::Mpv => {
                v.extend(
                    [
                        "--no-config",
                        "--really-quiet",
                        "--force-window=yes",
                        &format!("--title={title}"),
                        "--cache=no",
                        "--gpu-sw",
                    ]
                    .map(str::to_owned),
                );
                if low_latency_profile {
                    v.push("--profile=low-latency".to_owned());
                } else {
                    v.extend(
                        [
                            "--demuxer-lavf-o=fflags=+nobuffer",
                            "--demuxer-lavf-analyzeduration=0.1",
                            "--audio-buffer=0",
                        ]
                        .map(str::to_owned),
                    );
                }
                v.extend(
                    ["--demuxer-lavf-format=mpegts", "--no-input-terminal", "-"].map(str::to_owned),
                );
            }
            PlayerKind::Ffplay => {
                v.extend(
                    [
                        "-hide_banner",
                        "-loglevel",
                        "error",
                        "-fflags",
                        "nobuffer",
                        "-flags",
                        "low_delay",
                        "-framedrop",
                        "-window_title",
                        &title,
                        "-f",
                        "mpegts",
                        "-i",
                        "-",
                    ]
                    .map(str::to_owned),
                );
            }
        }
        v
    }

    /// The arguments for this machine's player version (probes mpv once per process).
    pub fn args_for_installed(self, channel: &str) -> Vec<String> {
        self.args(
            channel,
            self == PlayerKind::Mpv && mpv_has_low_latency_profile(),
        )
    }
}

/// Whether the installed mpv knows the built-in `low-latency` profile; asked once, because an
/// unknown profile makes mpv refuse to start.
fn mpv_has_low_latency_profile() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::process::Command::new("mpv")
            .args(["--no-config", "--profile=help"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim_start().starts_with("low-latency"))
            })
            .unwrap_or(false)
    })
}

/// Starting a player failed.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    /// The program is not on `PATH`.
    #[error("{program} not found: install it with `apt-get install {package}`")]
    NotFound {
        /// Executable name.
        program: String,
        /// Package to install.
        package: String,
    },
    /// Any other spawn failure.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Executable name.
        program: String,
        /// Why.
        source: io::Error,
    },
}

/// What happened to one payload offered to the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for the player.
    Queued,
    /// The queue was full (player too slow): dropped.
    Dropped,
    /// The player is gone.
    Closed,
}

/// The non-blocking input end of a player; cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaSink {
    tx: mpsc::Sender<Vec<u8>>,
}

impl MediaSink {
    /// A sink and the receiving end of its queue, for a consumer other than [`Player`]
    /// (tests, an in-process recorder).
    pub fn pair(capacity: usize) -> (MediaSink, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(capacity);
        (MediaSink { tx }, rx)
    }

    /// Queues one payload without ever waiting.
    pub fn offer(&self, payload: Vec<u8>) -> Offer {
        match self.tx.try_send(payload) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Dropped,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// The player exited, its stdin broke, or it was stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A running player. Dropping it kills the process.
#[derive(Debug)]
pub struct Player {
    label: String,
    sink: MediaSink,
    /// Dropped with the handle: the writer task then kills the child.
    _kill: oneshot::Sender<()>,
}

impl Player {
    /// Starts `kind` for `channel` on `runtime` (the process is forked from the calling
    /// thread: see the module docs about the death signal).
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        kind: PlayerKind,
        channel: &str,
    ) -> Result<Player, PlayerError> {
        let args = kind.args_for_installed(channel);
        Self::spawn_program(runtime, kind.program(), &args, kind.package())
    }

    /// Starts any program that reads a stream on stdin (tests use `sh -c 'cat > f'`);
    /// `package` goes into the "not found" message.
    pub fn spawn_program(
        runtime: &tokio::runtime::Handle,
        program: &str,
        args: &[String],
        package: &str,
    ) -> Result<Player, PlayerError> {
        // tokio's process reaper and `tokio::spawn` need the runtime's context.
        let _guard = runtime.enter();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        meshcast_io::process::die_with_parent(cmd.as_std_mut());
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                PlayerError::NotFound {
                    program: program.to_owned(),
                    package: package.to_owned(),
                }
            } else {
                PlayerError::Spawn {
                    program: program.to_owned(),
                    source,
                }
            }
        })?;
        let Some(stdin) = child.stdin.take() else {
            return Err(PlayerError::Spawn {
                program: program.to_owned(),
                source: io::Error::other("no stdin pipe"),
            });
        };
        let label = format!("{program}[{}]", child.id().unwrap_or(0));
        tracing::info!("started player {label}");
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let (kill_tx, kill_rx) = oneshot::channel();
        runtime.spawn(feed(child, stdin, rx, kill_rx, label.clone()));
        Ok(Player {
            label,
            sink: MediaSink { tx },
            _kill: kill_tx,
        })
    }

    /// Where to send the stream.
    pub fn sink(&self) -> MediaSink {
        self.sink.clone()
    }

    /// Program name and process id, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The player exited or its stdin broke.
    pub fn is_closed(&self) -> bool {
        self.sink.is_closed()
    }
}

/// The writer task: queue → stdin, until the player ends or the handle is dropped.
async fn feed(
    mut child: Child,
    mut stdin: ChildStdin,
    mut queue: mpsc::Receiver<Vec<u8>>,
    mut kill: oneshot::Receiver<()>,
    label: String,
) {
    loop {
        // A dropped `Player` resolves `kill` with an error: both mean "stop".
        let chunk = tokio::select! {
            biased;
            _ = &mut kill => break,
            status = child.wait() => {
                tracing::info!("player {label} exited: {}", describe(status));
                return;
            }
            chunk = queue.recv() => chunk,
        };
        let Some(chunk) = chunk else { break };
        // The write can wait for a player that stopped reading: stay responsive to the kill
        // and to its exit meanwhile.
        tokio::select! {
            biased;
            _ = &mut kill => break,
            status = child.wait() => {
                tracing::info!("player {label} exited: {}", describe(status));
                return;
            }
            r = stdin.write_all(&chunk) => {
                if let Err(e) = r {
                    // Usually the player is exiting: its status says why.
                    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                        Ok(status) => tracing::info!(
                            "player {label} stopped reading ({e}) and exited: {}",
                            describe(status)
                        ),
                        Err(_) => tracing::info!("player {label} stopped reading: {e}"),
                    }
                    break;
                }
            }
        }
    }
    drop(stdin);
    queue.close();
    match child.kill().await {
        Ok(()) => tracing::info!("player {label} stopped"),
        Err(e) => tracing::debug!("killing player {label}: {e}"),
    }
}

fn describe(status: io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn on_path(program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
    }

    #[test]
    fn mpv_reads_stdin_with_the_low_latency_profile() {
        let a = PlayerKind::Mpv.args("news", true);
        assert_eq!(a.first().map(String::as_str), Some("--no-config"));
        assert!(a.contains(&"--title=meshcast:news".to_owned()));
        assert!(a.contains(&"--profile=low-latency".to_owned()));
        assert!(a.contains(&"--cache=no".to_owned()));
        assert!(a.contains(&"--force-window=yes".to_owned()));
        assert!(
            a.contains(&"--gpu-sw".to_owned()),
            "else mpv closes stdin under llvmpipe"
        );
        assert_eq!(a.last().map(String::as_str), Some("-"));
        let fallback = PlayerKind::Mpv.args("news", false);
        assert!(!fallback.iter().any(|x| x.starts_with("--profile")));
        assert!(fallback.contains(&"--demuxer-lavf-o=fflags=+nobuffer".to_owned()));
    }

    #[test]
    fn ffplay_forces_the_mpegts_demuxer_with_f_not_format() {
        let a = PlayerKind::Ffplay.args("news", false);
        assert!(!a.contains(&"-format".to_owned()));
        let f = a.iter().position(|x| x == "-f").expect("-f present");
        assert_eq!(a[f + 1], "mpegts");
        assert_eq!(a[a.len() - 2..], ["-i".to_owned(), "-".to_owned()]);
        assert!(a.windows(2).any(|w| w == ["-fflags", "nobuffer"]));
    }

    #[test]
    fn missing_player_names_the_package_to_install() {
        let e = PlayerError::NotFound {
            program: "mpv".into(),
            package: PlayerKind::Mpv.package().into(),
        };
        assert_eq!(
            e.to_string(),
            "mpv not found: install it with `apt-get install mpv`"
        );
        let rt = runtime();
        let err = Player::spawn_program(
            rt.handle(),
            "meshcast-no-such-player",
            &[],
            "meshcast-no-such-package",
        )
        .unwrap_err();
        assert!(matches!(err, PlayerError::NotFound { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("apt-get install meshcast-no-such-package")
        );
    }

    /// mpv exits 1 on an option it does not know and 2 when the input is not playable (here:
    /// empty): exit 2 proves every option was accepted.
    #[test]
    fn installed_mpv_accepts_our_options() {
        if !on_path("mpv") {
            eprintln!("skipped: mpv not installed");
            return;
        }
        let mut args = PlayerKind::Mpv.args_for_installed("t");
        args.retain(|a| a != "--force-window=yes");
        args.splice(0..0, ["--vo=null".to_owned(), "--ao=null".to_owned()]);
        let out = std::process::Command::new("mpv")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "mpv {args:?}: {out:?}");
    }

    /// ffplay exits 0 even on bad options, but then complains on stderr.
    #[test]
    fn installed_ffplay_accepts_our_options() {
        if !on_path("ffplay") {
            eprintln!("skipped: ffplay not installed");
            return;
        }
        let mut args = PlayerKind::Ffplay.args("t", false);
        args.extend(["-autoexit".to_owned(), "-nodisp".to_owned()]);
        let out = std::process::Command::new("ffplay")
            .args(&args)
            .env("SDL_AUDIODRIVER", "dummy")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffplay {args:?}: {out:?}");
        assert!(
            !stderr.contains("not found") && !stderr.contains("Failed to set value"),
            "ffplay rejected an option: {stderr}"
        );
    }

    #[test]
    fn payloads_reach_the_player_stdin_in_order() {
        let rt = runtime();
        let dir = std::env::temp_dir().join(format!("meshcast-player-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out.ts");
        let script = format!("cat > '{}'", out.display());
        let player =
            Player::spawn_program(rt.handle(), "sh", &["-c".into(), script], "dash").unwrap();
        let sink = player.sink();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![i; 1316];
            expected.extend_from_slice(&chunk);
            assert_eq!(sink.offer(chunk), Offer::Queued);
        }
        wait_until(
            "the player to read everything",
            Duration::from_secs(10),
            || std::fs::metadata(&out).is_ok_and(|m| m.len() == expected.len() as u64),
        );
        assert_eq!(std::fs::read(&out).unwrap(), expected);
        drop(player);
        wait_until(
            "the stopped player's sink to close",
            Duration::from_secs(10),
            || sink.is_closed(),
        );
        assert_eq!(sink.offer(vec![0; 188]), Offer::Closed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_player_that_exits_closes_its_sink() {
        let rt = runtime();
        let player = Player::spawn_program(rt.handle(), "true", &[], "coreutils").unwrap();
        wait_until(
            "the exited player's sink to close",
            Duration::from_secs(10),
            || player.is_closed(),
        );
    }

    #[test]
    fn dropping_the_player_kills_the_process() {
        let rt = runtime();
        let player =
            Player::spawn_program(rt.handle(), "sleep", &["1000".into()], "coreutils").unwrap();
        let pid: i32 = player
            .label()
            .rsplit('[')
            .next()
            .and_then(|s| s.trim_end_matches(']').parse().ok())
            .unwrap();
        assert!(pid > 0);
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                // State field after the command name: Z (zombie) counts as dead.
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
        };
        assert!(alive());
        drop(player);
        wait_until("the player process to die", Duration::from_secs(10), || {
            !alive()
        });
    }
}
