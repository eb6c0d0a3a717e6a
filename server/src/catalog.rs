//! The videos directory seen as a catalogue of live channels.
//!
//! The server turns every video file found directly inside one directory into a
//! channel: the file is played in a loop, in real time, by its own FFmpeg child
//! (see `ffmpeg.rs`). This module only decides *which* channels exist and what
//! they are called; it never touches the encoder.
//!
//! * [`scan`] reads the directory once (not recursively). A regular file whose
//!   extension is a known video container becomes a channel named after its
//!   file stem. Names are sanitised to `[A-Za-z0-9_.-]` (any other character
//!   becomes `-`), cut to [`MAX_NAME_LEN`] characters, and made unique with `-2`,
//!   `-3`, … suffixes, assigned in file-name order so the result does not depend
//!   on the order the OS lists the directory in. Hidden files and partial
//!   downloads are skipped. An empty directory still yields one channel, the
//!   synthetic [`TEST_PATTERN_NAME`] channel, so a fresh server always has
//!   something to stream.
//! * [`Watcher`] polls the directory (polling is portable and cheap for a
//!   handful of files) and reports [`CatalogEvent::Added`] /
//!   [`CatalogEvent::Removed`] differences. A new file is only accepted once
//!   its size and modification time stayed the same for [`STABLE_POLLS`]
//!   consecutive polls, so a file that is still being copied in is not
//!   streamed half-written. The test pattern disappears as soon as a real file
//!   is accepted and comes back when the last one is removed. Names already
//!   handed out are never changed while the watcher runs (a channel keeps its
//!   name even if a later file would sort before it).
//! * [`probe`] asks `ffprobe` what a file contains; a file without a video
//!   stream is an error and the caller is expected to skip it with a warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::mpsc;

/// File extensions (lower case) recognised as video containers.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "mkv", "mov", "webm", "ts", "m2ts", "avi", "flv", "mpg", "mpeg", "m4v",
];

/// Name of the synthetic channel served when the directory holds no video.
pub const TEST_PATTERN_NAME: &str = "test-pattern";

/// Longest channel name, in characters (all names are ASCII).
pub const MAX_NAME_LEN: usize = 48;

/// Number of consecutive polls a new file's size must stay unchanged before
/// the [`Watcher`] accepts it.
pub const STABLE_POLLS: u32 = 2;

/// Default polling period of the [`Watcher`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long [`probe`] waits for `ffprobe` before giving up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a channel's pictures come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelInput {
    /// A video file, played in a loop.
    File(PathBuf),
    /// FFmpeg's synthetic `testsrc2` picture with a 440 Hz tone.
    TestPattern,
}

/// One channel of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelSpec {
    /// Sanitised, unique channel name (`[A-Za-z0-9_.-]{1,48}`).
    pub name: String,
    /// What the encoder reads.
    pub input: ChannelInput,
}

impl ChannelSpec {
    /// The synthetic test-pattern channel.
    pub fn test_pattern() -> Self {
        ChannelSpec {
            name: TEST_PATTERN_NAME.to_string(),
            input: ChannelInput::TestPattern,
        }
    }
}

/// Reads `dir` once and returns its channels, sorted by file name (see the
/// module documentation for the rules). Never returns an empty list: without
/// any video file the single test-pattern channel is returned.
pub fn scan(dir: &Path) -> io::Result<Vec<ChannelSpec>> {
    let files = list_video_files(dir)?;
    if files.is_empty() {
        return Ok(vec![ChannelSpec::test_pattern()]);
    }
    let mut taken = HashSet::new();
    Ok(files
        .into_iter()
        .map(|f| ChannelSpec {
            name: unique_name(&sanitize_name(&f.stem()), &mut taken),
            input: ChannelInput::File(f.path),
        })
        .collect())
}

/// Turns a file stem into a channel name: characters outside
/// `[A-Za-z0-9_.-]` become `-`, the result is cut to [`MAX_NAME_LEN`]
/// characters, and an empty result becomes `channel`.
pub fn sanitize_name(stem: &str) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    if name.is_empty() {
        name.push_str("channel");
    }
    name
}

/// Returns `base` if it is free, otherwise `base-2`, `base-3`, … (the base
/// is shortened so the result still fits in [`MAX_NAME_LEN`]). The returned
/// name is inserted into `taken`.
fn unique_name(base: &str, taken: &mut HashSet<String>) -> String {
    if taken.insert(base.to_string()) {
        return base.to_string();
    }
    let mut n: u32 = 2;
    loop {
        let suffix = format!("-{n}");
        let keep = MAX_NAME_LEN.saturating_sub(suffix.len()).min(base.len());
        // Names are ASCII after sanitising, so byte slicing is on a char boundary.
        let candidate = format!("{}{}", &base[..keep], suffix);
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// Whether a directory entry's file name looks like a finished video file.
fn is_video_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if [".part", ".tmp", ".crdownload", ".partial", ".download"]
        .iter()
        .any(|s| lower.ends_with(s))
    {
        return false;
    }
    match lower.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && VIDEO_EXTENSIONS.contains(&ext),
        None => false,
    }
}

/// A candidate video file of the directory.
#[derive(Debug, Clone)]
struct VideoFile {
    file_name: OsString,
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl VideoFile {
    fn stem(&self) -> String {
        Path::new(&self.file_name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Regular video files directly inside `dir` (symlinks to regular files count),
/// sorted by file name.
fn list_video_files(dir: &Path) -> io::Result<Vec<VideoFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        if !is_video_file_name(&file_name.to_string_lossy()) {
            continue;
        }
        let path = dir.join(&file_name);
        // `fs::metadata` follows symlinks; a dangling link is simply skipped.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        files.push(VideoFile {
            file_name,
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(files)
}

/// A change of the catalogue reported by the [`Watcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEvent {
    /// A new channel should be started.
    Added(ChannelSpec),
    /// The channel with this name should be stopped.
    Removed(String),
}

/// Size/modification-time observation of a file that is not accepted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    len: u64,
    modified: Option<SystemTime>,
    /// Consecutive polls that saw exactly this `len`/`modified`.
    stable_polls: u32,
}

/// Polls a directory and reports how its channel catalogue changes.
///
/// Build it with the channels the caller already serves (usually the result of
/// [`scan`]), then either call [`Watcher::poll`] yourself or hand it to
/// [`Watcher::run`]. Within one poll all removals are reported before any
/// addition, so a name freed by a removal may be reused by an addition of the
/// same poll (for example `test-pattern.mp4` replacing the test pattern).
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    interval: Duration,
    /// Accepted files and the channel name each got.
    known: BTreeMap<PathBuf, String>,
    /// Files seen but not accepted yet.
    pending: HashMap<PathBuf, Pending>,
    /// Whether the test-pattern channel is currently part of the catalogue.
    test_pattern: bool,
}

impl Watcher {
    /// A watcher of `dir` that polls every `poll_interval`, starting from the
    /// catalogue `initial` (the channels already running). File channels of
    /// `initial` are taken as accepted; other files present in the directory
    /// go through the stability check.
    pub fn new(dir: impl Into<PathBuf>, poll_interval: Duration, initial: &[ChannelSpec]) -> Self {
        let mut known = BTreeMap::new();
        let mut test_pattern = false;
        for spec in initial {
            match &spec.input {
                ChannelInput::File(path) => {
                    known.insert(path.clone(), spec.name.clone());
                }
                ChannelInput::TestPattern => test_pattern = true,
            }
        }
        Watcher {
            dir: dir.into(),
            interval: poll_interval,
            known,
            pending: HashMap::new(),
            test_pattern,
        }
    }

    /// The current catalogue (files in file-name order, then the test pattern
    /// if it is active).
    #[cfg(test)]
    pub fn channels(&self) -> Vec<ChannelSpec> {
        let mut out: Vec<ChannelSpec> = self
            .known
            .iter()
            .map(|(path, name)| ChannelSpec {
                name: name.clone(),
                input: ChannelInput::File(path.clone()),
            })
            .collect();
        if self.test_pattern {
            out.push(ChannelSpec::test_pattern());
        }
        out
    }

    /// Reads the directory once and returns the changes since the previous
    /// poll (removals first). An error reading the directory leaves the
    /// catalogue unchanged.
    pub fn poll(&mut self) -> io::Result<Vec<CatalogEvent>> {
        let files = list_video_files(&self.dir)?;
        let present: HashSet<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        let mut events = Vec::new();

        // Files that disappeared.
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !present.contains(p.as_path()))
            .cloned()
            .collect();
        for path in gone {
            if let Some(name) = self.known.remove(&path) {
                events.push(CatalogEvent::Removed(name));
            }
        }
        self.pending.retain(|p, _| present.contains(p.as_path()));

        // New files: accept those whose size stayed put long enough.
        let mut accepted = Vec::new();
        for file in &files {
            if self.known.contains_key(&file.path) {
                continue;
            }
            let seen = Pending {
                len: file.len,
                modified: file.modified,
                stable_polls: 0,
            };
            match self.pending.get_mut(&file.path) {
                Some(p) if p.len == seen.len && p.modified == seen.modified && seen.len > 0 => {
                    p.stable_polls += 1;
                    if p.stable_polls >= STABLE_POLLS {
                        accepted.push(file);
                    }
                }
                Some(p) => *p = seen,
                None => {
                    self.pending.insert(file.path.clone(), seen);
                }
            }
        }

        let will_have_files = !self.known.is_empty() || !accepted.is_empty();
        if will_have_files && self.test_pattern {
            self.test_pattern = false;
            events.push(CatalogEvent::Removed(TEST_PATTERN_NAME.to_string()));
        }
        let mut taken: HashSet<String> = self.known.values().cloned().collect();
        if self.test_pattern {
            taken.insert(TEST_PATTERN_NAME.to_string());
        }
        for file in accepted {
            self.pending.remove(&file.path);
            let name = unique_name(&sanitize_name(&file.stem()), &mut taken);
            self.known.insert(file.path.clone(), name.clone());
            events.push(CatalogEvent::Added(ChannelSpec {
                name,
                input: ChannelInput::File(file.path.clone()),
            }));
        }
        if !will_have_files && !self.test_pattern {
            self.test_pattern = true;
            events.push(CatalogEvent::Added(ChannelSpec::test_pattern()));
        }
        Ok(events)
    }

    /// Polls forever, sending every change on `tx`; returns when the receiver
    /// is dropped. Directory read errors are logged and retried at the next
    /// poll. (The directory is read synchronously: a `read_dir` + `stat` of a
    /// few files is far cheaper than a hop to the blocking pool.)
    pub async fn run(mut self, tx: mpsc::Sender<CatalogEvent>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tx.closed() => return,
            }
            // Directory reads block (a slow or network filesystem can take seconds): poll on
            // the blocking pool, never on the runtime that also drives the node.
            let polled = tokio::task::spawn_blocking(move || {
                let events = self.poll();
                (self, events)
            })
            .await;
            let events = match polled {
                Ok((watcher, events)) => {
                    self = watcher;
                    events
                }
                Err(err) => {
                    tracing::error!(%err, "the videos directory watcher failed");
                    return;
                }
            };
            match events {
                Ok(events) => {
                    for event in events {
                        tracing::info!(dir = %self.dir.display(), ?event, "catalogue changed");
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(dir = %self.dir.display(), %err, "cannot read the videos directory");
                }
            }
        }
    }
}

/// What [`probe`] learnt about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Width of the first video stream, in pixels.
    pub width: u16,
    /// Height of the first video stream, in pixels.
    pub height: u16,
    /// Frame rate × 1000 (29.97 fps → 29970); 0 if FFmpeg does not know it.
    pub fps_milli: u32,
    /// FFmpeg codec name of the first video stream (`h264`, `vp9`, …).
    pub video_codec: String,
    /// Whether the file has at least one audio stream.
    pub audio: bool,
    /// Container duration in seconds, when known.
    pub duration_s: Option<f64>,
}

/// Why [`probe`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// `ffprobe` could not be started at all.
    #[error(
        "cannot run {program}: {source} (ffprobe ships with FFmpeg: `apt-get install ffmpeg` on Debian/Ubuntu)"
    )]
    Spawn {
        /// The program that was run.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `ffprobe` did not answer in time (it was killed).
    #[error("ffprobe took longer than {0:?} on {1}")]
    Timeout(Duration, PathBuf),
    /// `ffprobe` exited with an error (unreadable or not a media file).
    #[error("ffprobe failed on {path} ({status}): {stderr}")]
    Failed {
        /// The probed file.
        path: PathBuf,
        /// Exit status of ffprobe.
        status: std::process::ExitStatus,
        /// What ffprobe printed on stderr (trimmed).
        stderr: String,
    },
    /// ffprobe's output was not the JSON we expected.
    #[error("cannot parse ffprobe output for {path}: {source}")]
    Json {
        /// The probed file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The file has no (non-cover-art) video stream.
    #[error("{0} has no video stream")]
    NoVideo(PathBuf),
    /// The video stream's size is missing or does not fit in 16 bits.
    #[error("{path}: unusable video size {width:?}x{height:?}")]
    BadSize {
        /// The probed file.
        path: PathBuf,
        /// Width reported by ffprobe.
        width: Option<i64>,
        /// Height reported by ffprobe.
        height: Option<i64>,
    },
}

#[derive(Debug, Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    #[serde(default)]
    disposition: Option<ProbeDisposition>,
}

#[derive(Debug, Deserialize)]
struct ProbeDisposition {
    #[serde(default)]
    attached_pic: i64,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

impl fmt::Display for ChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.input {
            ChannelInput::File(path) => write!(f, "{} ({})", self.name, path.display()),
            ChannelInput::TestPattern => write!(f, "{} (test pattern)", self.name),
        }
    }
}

/// Parses an FFmpeg rational such as `30000/1001` into milli-frames per
/// second; `None` for `0/0` and other unusable values.
fn rate_to_milli(rate: &str) -> Option<u32> {
    let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
    let num: u64 = num.trim().parse().ok()?;
    let den: u64 = den.trim().parse().ok()?;
    if num == 0 || den == 0 {
        return None;
    }
    let milli = (num * 1000 + den / 2) / den;
    u32::try_from(milli).ok()
}

/// Interprets ffprobe's JSON output (`-show_streams -show_format`).
fn parse_probe(path: &Path, json: &[u8]) -> Result<MediaInfo, ProbeError> {
    let out: ProbeOutput = serde_json::from_slice(json).map_err(|source| ProbeError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let is_type = |s: &ProbeStream, t: &str| s.codec_type.as_deref() == Some(t);
    let video = out
        .streams
        .iter()
        .find(|s| is_type(s, "video") && s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0))
        .ok_or_else(|| ProbeError::NoVideo(path.to_path_buf()))?;
    let dim = |v: Option<i64>| v.and_then(|v| u16::try_from(v).ok()).filter(|&v| v > 0);
    let (Some(width), Some(height)) = (dim(video.width), dim(video.height)) else {
        return Err(ProbeError::BadSize {
            path: path.to_path_buf(),
            width: video.width,
            height: video.height,
        });
    };
    let fps_milli = [&video.avg_frame_rate, &video.r_frame_rate]
        .into_iter()
        .flatten()
        .find_map(|r| rate_to_milli(r))
        .unwrap_or(0);
    let duration_s = out
        .format
        .and_then(|f| f.duration)
        .and_then(|d| d.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0);
    Ok(MediaInfo {
        width,
        height,
        fps_milli,
        video_codec: video.codec_name.clone().unwrap_or_default(),
        audio: out.streams.iter().any(|s| is_type(s, "audio")),
        duration_s,
    })
}

/// Describes `path` with `ffprobe` (from `PATH`), giving up after
/// [`PROBE_TIMEOUT`].
pub async fn probe(path: &Path) -> Result<MediaInfo, ProbeError> {
    probe_with(Path::new("ffprobe"), path, PROBE_TIMEOUT).await
}

/// [`probe`] with an explicit `ffprobe` binary and timeout.
pub async fn probe_with(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
) -> Result<MediaInfo, ProbeError> {
    let mut cmd = tokio::process::Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
    ])
    .arg(path)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Dropping the `output()` future on timeout kills ffprobe.
    .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => return Err(ProbeError::Timeout(timeout, path.to_path_buf())),
        Ok(Err(source)) => {
            return Err(ProbeError::Spawn {
                program: ffprobe.display().to_string(),
                source,
            });
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(ProbeError::Failed {
            path: path.to_path_buf(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    parse_probe(path, &output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("meshcast-catalog-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).expect("write test file");
            path
        }

        fn append(&self, name: &str, bytes: &[u8]) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(self.0.join(name))
                .expect("open for append");
            f.write_all(bytes).expect("append");
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn file_spec(name: &str, path: PathBuf) -> ChannelSpec {
        ChannelSpec {
            name: name.to_string(),
            input: ChannelInput::File(path),
        }
    }

    fn ffmpeg_available() -> bool {
        std::process::Command::new("ffprobe")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn sanitize_replaces_and_truncates() {
        assert_eq!(sanitize_name("My Movie (2020)"), "My-Movie--2020-");
        assert_eq!(sanitize_name("ok_name-1.2"), "ok_name-1.2");
        assert_eq!(sanitize_name("été"), "-t-");
        assert_eq!(sanitize_name(""), "channel");
        let long = "x".repeat(100);
        assert_eq!(sanitize_name(&long).len(), MAX_NAME_LEN);
    }

    #[test]
    fn unique_name_suffixes_fit_in_max_len() {
        let mut taken = HashSet::new();
        let base = "y".repeat(MAX_NAME_LEN);
        assert_eq!(unique_name(&base, &mut taken), base);
        let second = unique_name(&base, &mut taken);
        assert_eq!(second.len(), MAX_NAME_LEN);
        assert!(second.ends_with("-2"));
        // A file literally called "a-2" makes the duplicate of "a" skip to "-3".
        let mut taken = HashSet::new();
        assert_eq!(unique_name("a", &mut taken), "a");
        assert_eq!(unique_name("a-2", &mut taken), "a-2");
        assert_eq!(unique_name("a", &mut taken), "a-3");
    }

    #[test]
    fn video_file_name_filter() {
        for ok in [
            "a.mp4", "B.MKV", "c.Mov", "d.webm", "e.ts", "f.m2ts", "g.avi",
        ] {
            assert!(is_video_file_name(ok), "{ok}");
        }
        for ok in ["h.flv", "i.mpg", "j.mpeg", "k.m4v", "movie.final.mp4"] {
            assert!(is_video_file_name(ok), "{ok}");
        }
        for bad in [
            ".hidden.mp4",
            "a.mp4.part",
            "a.mp4.tmp",
            "a.MP4.PART",
            "notes.txt",
            "README",
            "a.mp4~",
            ".mp4",
            "a.mp3",
        ] {
            assert!(!is_video_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn scan_sorts_sanitizes_and_dedups() {
        let dir = TempDir::new("scan");
        let b = dir.write("b movie.mkv", b"x");
        let a = dir.write("a.mp4", b"x");
        let dup1 = dir.write("b!movie.mp4", b"x");
        let dup2 = dir.write("b-movie.MOV", b"x");
        dir.write("notes.txt", b"x");
        dir.write(".hidden.mp4", b"x");
        dir.write("c.mp4.part", b"x");
        dir.write("d.tmp", b"x");
        std::fs::create_dir(dir.0.join("sub.mp4")).expect("mkdir");
        let got = scan(&dir.0).expect("scan");
        // Sorted by file name: "a.mp4" < "b movie.mkv" < "b!movie.mp4" < "b-movie.MOV".
        assert_eq!(
            got,
            vec![
                file_spec("a", a),
                file_spec("b-movie", b),
                file_spec("b-movie-2", dup1),
                file_spec("b-movie-3", dup2),
            ]
        );
        // Deterministic: a second scan gives the same answer.
        assert_eq!(scan(&dir.0).expect("scan"), got);
    }

    #[test]
    fn scan_truncates_long_names() {
        let dir = TempDir::new("long");
        let stem = "n".repeat(60);
        dir.write(&format!("{stem}.mp4"), b"x");
        dir.write(&format!("{stem}.mkv"), b"x");
        let got = scan(&dir.0).expect("scan");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "n".repeat(MAX_NAME_LEN));
        assert_eq!(got[1].name, format!("{}-2", "n".repeat(MAX_NAME_LEN - 2)));
    }

    #[test]
    fn empty_dir_gives_test_pattern() {
        let dir = TempDir::new("empty");
        assert_eq!(
            scan(&dir.0).expect("scan"),
            vec![ChannelSpec::test_pattern()]
        );
        dir.write("only-text.txt", b"x");
        assert_eq!(
            scan(&dir.0).expect("scan"),
            vec![ChannelSpec::test_pattern()]
        );
    }

    #[test]
    fn scan_of_missing_dir_is_an_error() {
        assert!(scan(Path::new("/nonexistent/meshcast/videos")).is_err());
    }

    #[test]
    fn watcher_reports_added_and_removed() {
        let dir = TempDir::new("watch");
        let initial = scan(&dir.0).expect("scan");
        let mut w = Watcher::new(&dir.0, Duration::from_millis(10), &initial);
        assert_eq!(w.channels(), vec![ChannelSpec::test_pattern()]);
        assert!(w.poll().expect("poll").is_empty());

        let a = dir.write("a.mp4", b"0123456789");
        // First sighting, then two stable polls.
        assert!(w.poll().expect("poll").is_empty());
        assert!(w.poll().expect("poll").is_empty());
        assert_eq!(
            w.poll().expect("poll"),
            vec![
                CatalogEvent::Removed(TEST_PATTERN_NAME.to_string()),
                CatalogEvent::Added(file_spec("a", a.clone())),
            ]
        );
        assert!(w.poll().expect("poll").is_empty());
        assert_eq!(w.channels(), vec![file_spec("a", a.clone())]);

        // A second file with a colliding name gets a suffix; "a" keeps its name.
        let a2 = dir.write("a.mkv", b"abc");
        for _ in 0..STABLE_POLLS {
            assert!(w.poll().expect("poll").is_empty());
        }
        assert_eq!(
            w.poll().expect("poll"),
            vec![CatalogEvent::Added(file_spec("a-2", a2.clone()))]
        );

        std::fs::remove_file(&a).expect("rm");
        assert_eq!(
            w.poll().expect("poll"),
            vec![CatalogEvent::Removed("a".to_string())]
        );
        std::fs::remove_file(&a2).expect("rm");
        assert_eq!(
            w.poll().expect("poll"),
            vec![
                CatalogEvent::Removed("a-2".to_string()),
                CatalogEvent::Added(ChannelSpec::test_pattern()),
            ]
        );
        assert!(w.poll().expect("poll").is_empty());
    }

    #[test]
    fn watcher_waits_until_size_is_stable() {
        let dir = TempDir::new("growing");
        let mut w = Watcher::new(
            &dir.0,
            Duration::from_millis(10),
            &[ChannelSpec::test_pattern()],
        );
        // An empty file (just created by a copy) is never accepted.
        dir.write("big.mp4", b"");
        for _ in 0..4 {
            assert!(w.poll().expect("poll").is_empty());
        }
        // The file keeps growing: still nothing.
        for _ in 0..5 {
            dir.append("big.mp4", b"more bytes");
            assert!(w.poll().expect("poll").is_empty());
        }
        // Copy finished: accepted after STABLE_POLLS unchanged polls.
        for _ in 0..STABLE_POLLS - 1 {
            assert!(w.poll().expect("poll").is_empty());
        }
        let events = w.poll().expect("poll");
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0],
            CatalogEvent::Removed(TEST_PATTERN_NAME.to_string())
        );
        assert!(matches!(&events[1], CatalogEvent::Added(s) if s.name == "big"));
    }

    #[test]
    fn watcher_file_named_like_test_pattern_takes_over_the_name() {
        let dir = TempDir::new("tpname");
        let mut w = Watcher::new(
            &dir.0,
            Duration::from_millis(10),
            &[ChannelSpec::test_pattern()],
        );
        let p = dir.write("test-pattern.mp4", b"x");
        let mut events = Vec::new();
        for _ in 0..=STABLE_POLLS {
            events.extend(w.poll().expect("poll"));
        }
        assert_eq!(
            events,
            vec![
                CatalogEvent::Removed(TEST_PATTERN_NAME.to_string()),
                CatalogEvent::Added(file_spec("test-pattern", p)),
            ]
        );
    }

    #[test]
    fn watcher_with_initial_scan_reports_nothing_new() {
        let dir = TempDir::new("initial");
        dir.write("x.mp4", b"x");
        dir.write("y.webm", b"y");
        let initial = scan(&dir.0).expect("scan");
        let mut w = Watcher::new(&dir.0, Duration::from_millis(10), &initial);
        for _ in 0..4 {
            assert!(w.poll().expect("poll").is_empty());
        }
        assert_eq!(w.channels(), initial);
    }

    #[tokio::test]
    async fn watcher_run_sends_events() {
        let dir = TempDir::new("run");
        let w = Watcher::new(&dir.0, Duration::from_millis(20), &[]);
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(w.run(tx));
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("event before deadline");
        assert_eq!(
            first,
            Some(CatalogEvent::Added(ChannelSpec::test_pattern()))
        );
        let path = dir.write("clip.ts", b"data");
        let mut got = Vec::new();
        while got.len() < 2 {
            let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("event before deadline")
                .expect("watcher alive");
            got.push(ev);
        }
        assert_eq!(
            got,
            vec![
                CatalogEvent::Removed(TEST_PATTERN_NAME.to_string()),
                CatalogEvent::Added(file_spec("clip", path)),
            ]
        );
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("watcher stops when the receiver is gone")
            .expect("no panic");
    }

    #[test]
    fn rates_parse() {
        assert_eq!(rate_to_milli("30/1"), Some(30_000));
        assert_eq!(rate_to_milli("30000/1001"), Some(29_970));
        assert_eq!(rate_to_milli("25"), Some(25_000));
        assert_eq!(rate_to_milli("0/0"), None);
        assert_eq!(rate_to_milli("abc"), None);
    }

    #[test]
    fn parse_probe_skips_cover_art_and_reads_fields() {
        let json = br#"{
            "streams": [
                {"codec_type": "audio", "codec_name": "aac"},
                {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
                 "avg_frame_rate": "0/0", "r_frame_rate": "90000/1", "disposition": {"attached_pic": 1}},
                {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                 "avg_frame_rate": "0/0", "r_frame_rate": "30000/1001", "disposition": {"attached_pic": 0}}
            ],
            "format": {"duration": "12.500000"}
        }"#;
        let info = parse_probe(Path::new("x.mp4"), json).expect("parse");
        assert_eq!(
            info,
            MediaInfo {
                width: 1920,
                height: 1080,
                fps_milli: 29_970,
                video_codec: "h264".to_string(),
                audio: true,
                duration_s: Some(12.5),
            }
        );
        let audio_only =
            br#"{"streams": [{"codec_type": "audio", "codec_name": "mp3"}], "format": {}}"#;
        assert!(matches!(
            parse_probe(Path::new("a.mp3"), audio_only),
            Err(ProbeError::NoVideo(_))
        ));
        assert!(matches!(
            parse_probe(Path::new("x"), b"not json"),
            Err(ProbeError::Json { .. })
        ));
    }

    #[tokio::test]
    async fn probe_real_files() {
        if !ffmpeg_available() {
            eprintln!("skipping probe_real_files: ffprobe not on PATH");
            return;
        }
        let dir = TempDir::new("probe");
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
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t",
                "1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac"])
            .arg(&clip)
            .status()
            .await
            .expect("run ffmpeg");
        assert!(status.success());
        let info = probe(&clip).await.expect("probe clip");
        assert_eq!((info.width, info.height), (160, 120));
        assert_eq!(info.fps_milli, 25_000);
        assert_eq!(info.video_codec, "h264");
        assert!(info.audio);
        let d = info.duration_s.expect("duration");
        assert!((0.9..1.2).contains(&d), "{d}");

        let text = dir.write("notes.mp4", b"this is not a video");
        assert!(matches!(probe(&text).await, Err(ProbeError::Failed { .. })));
        let missing = probe_with(
            Path::new("meshcast-no-such-ffprobe"),
            &clip,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(missing, Err(ProbeError::Spawn { .. })));
    }
}
