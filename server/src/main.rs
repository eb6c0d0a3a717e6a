//! `meshcast-server`: turns the video files of a directory into live channels.
//!
//! Each file becomes a channel named after its stem, encoded in real time by a supervised
//! FFmpeg child (libx264 + AAC in MPEG-TS) and looped; files added or removed while running
//! add or remove channels; an empty directory offers a generated test pattern. The server is a
//! node of the overlay that also originates: it floods its catalogue and sends each chunk of 7
//! TS packets once to each downstream that joined.

mod catalog;
mod ffmpeg;

use anyhow::Context;
use catalog::{CatalogEvent, ChannelInput, ChannelSpec, Watcher};
use clap::Parser;
use ffmpeg::{EncodeSettings, Supervisor};
use meshcast_proto::node::{LocalChannel, Node, NodeCommand, NodeConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::mpsc;

/// A meshcast server: video files in, live channels out.
#[derive(Debug, Parser)]
#[command(name = "meshcast-server", version)]
struct Args {
    #[command(flatten)]
    overlay: meshcast_node::OverlayArgs,
    /// Directory of video files, one channel per file (watched for changes).
    #[arg(long)]
    videos: PathBuf,
    /// Video encoder. Only a software encoder is safe on a machine without a GPU.
    #[arg(long, default_value = "libx264")]
    encoder: String,
    /// Encoder preset.
    #[arg(long, default_value = "veryfast")]
    preset: String,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 2500)]
    video_kbps: u32,
    /// Audio bitrate in kbit/s.
    #[arg(long, default_value_t = 128)]
    audio_kbps: u32,
    /// Size of the generated test pattern (served when the directory has no video), WxH.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pattern_size: (u16, u16),
    /// Frame rate of the generated test pattern.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pattern_fps: u32,
    /// Path of the ffmpeg binary.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    meshcast_io::logging::init("info");
    // Check everything that can be wrong with the set-up before starting anything.
    if !args.videos.is_dir() {
        eprintln!(
            "meshcast-server: --videos {}: not a directory (give a directory of video files; an empty one serves a test pattern)",
            args.videos.display()
        );
        return ExitCode::from(2);
    }
    let encoder = args.encoder.clone();
    let ffmpeg = args.ffmpeg.clone();
    match tokio::task::spawn_blocking(move || ffmpeg::check_installed_at(&ffmpeg, &encoder)).await {
        Ok(Ok(info)) => tracing::info!("using {} ({})", info.path.display(), info.version),
        Ok(Err(e)) => {
            eprintln!("meshcast-server: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("meshcast-server: checking ffmpeg failed: {e}");
            return ExitCode::from(1);
        }
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshcast-server: {e:#}");
            ExitCode::from(meshcast_node::exit_code(&e))
        }
    }
}

/// Parses `WxH` with even dimensions (H.264 with 4:2:0 chroma needs them).
fn parse_size(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let w: u16 = w.parse().map_err(|_| format!("{s:?}: bad width"))?;
    let h: u16 = h.parse().map_err(|_| format!("{s:?}: bad height"))?;
    if w < 16 || h < 16 || w % 2 == 1 || h % 2 == 1 {
        return Err(format!(
            "{s:?}: width and height must be even and at least 16"
        ));
    }
    Ok((w, h))
}

fn settings(args: &Args) -> EncodeSettings {
    EncodeSettings {
        ffmpeg: args.ffmpeg.clone(),
        encoder: args.encoder.clone(),
        preset: args.preset.clone(),
        video_bitrate_kbps: args.video_kbps,
        audio_bitrate_kbps: args.audio_kbps,
        width: args.pattern_size.0,
        height: args.pattern_size.1,
        fps: args.pattern_fps,
        gop_frames: args.pattern_fps * 2,
        ..EncodeSettings::default()
    }
}

/// The catalogue entry of a channel: from ffprobe for files, from the settings for the
/// test pattern. A file FFmpeg cannot read is skipped, not advertised as a dead channel.
async fn describe(spec: &ChannelSpec, s: &EncodeSettings) -> Option<LocalChannel> {
    let bitrate_kbps = s.video_bitrate_kbps + s.audio_bitrate_kbps;
    match &spec.input {
        ChannelInput::TestPattern => Some(LocalChannel {
            name: spec.name.clone(),
            codec: "h264".into(),
            width: s.width,
            height: s.height,
            fps_milli: s.fps * 1000,
            bitrate_kbps,
        }),
        ChannelInput::File(path) => match catalog::probe(path).await {
            Ok(info) => Some(LocalChannel {
                name: spec.name.clone(),
                codec: "h264".into(),
                width: info.width,
                height: info.height,
                fps_milli: info.fps_milli,
                bitrate_kbps,
            }),
            Err(e) => {
                tracing::warn!("skipping {}: {e}", path.display());
                None
            }
        },
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let emulation = meshcast_node::Emulation::from_args(&args.overlay)?;
    let (_trigger, shutdown) = meshcast_io::Shutdown::on_signals();
    let initial = catalog::scan(&args.videos)
        .with_context(|| format!("reading {}", args.videos.display()))?;
    let o = &args.overlay;
    let (addr, neighbours) =
        meshcast_node::bootstrap(&o.id, o.bootstrapper, shutdown.clone()).await?;
    tracing::info!(
        "{} joined: address {addr}, {} neighbours",
        o.id,
        neighbours.len()
    );
    let seed = o.seed.unwrap_or_else(meshcast_node::process_seed);
    let mut config = NodeConfig::new(o.id.clone(), seed);
    config.dual_parent = o.dual_parent;
    let node = Node::new(config);
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    cmd_tx.send(NodeCommand::SetNeighbours(neighbours)).await?;

    let settings = settings(&args);
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<ffmpeg::Chunk>(256);
    let (cat_tx, mut cat_rx) = mpsc::channel(16);
    let watcher = Watcher::new(&args.videos, catalog::DEFAULT_POLL_INTERVAL, &initial);
    let watch_task = tokio::spawn(watcher.run(cat_tx.clone()));
    for spec in initial {
        cat_tx.send(CatalogEvent::Added(spec)).await?;
    }
    drop(cat_tx);

    // Channel manager: catalogue changes start and stop encoders; chunks become publishes.
    let manager_cmds = cmd_tx.clone();
    let mut manager_shutdown = shutdown.clone();
    let manager = tokio::spawn(async move {
        let mut encoders: BTreeMap<String, Supervisor> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = manager_shutdown.wait() => break,
                ev = cat_rx.recv() => match ev {
                    Some(CatalogEvent::Added(spec)) => {
                        if let Some(ch) = describe(&spec, &settings).await {
                            tracing::info!("channel {} from {spec}", ch.name);
                            let _ = manager_cmds.send(NodeCommand::AddChannel(ch)).await;
                            let sup = Supervisor::spawn(spec.clone(), settings.clone(), chunk_tx.clone());
                            encoders.insert(spec.name.clone(), sup);
                        }
                    }
                    Some(CatalogEvent::Removed(name)) => {
                        tracing::info!("channel {name} removed");
                        let _ = manager_cmds.send(NodeCommand::RemoveChannel(name.clone())).await;
                        if let Some(sup) = encoders.remove(&name) {
                            tracing::info!("stopping the encoder of {}", sup.channel());
                            sup.stop().await;
                        }
                    }
                    None => {}
                },
                chunk = chunk_rx.recv() => if let Some(c) = chunk {
                    let _ = manager_cmds
                        .send(NodeCommand::Publish { channel: c.channel, payload: c.data })
                        .await;
                },
            }
        }
        for (_, sup) in encoders {
            sup.stop().await;
        }
    });
    let result =
        meshcast_node::run(node, addr, cmd_rx, args.overlay.stats, emulation, shutdown).await;
    // The node has stopped: stop every encoder (no orphan FFmpeg) before exiting.
    let _ = manager.await;
    watch_task.abort();
    result
}
