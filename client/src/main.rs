//! `meshcast-client` entry point: parse the command line, pick the mode, run it.

use clap::{CommandFactory, Parser};
use meshcast_client::cli::{Args, Mode, display_available};
use meshcast_client::headless::{self, HeadlessOptions, Task};
use meshcast_client::net::{ClientView, NetHandle};
use meshcast_client::player::PlayerChoice;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

fn main() -> ExitCode {
    let args = Args::parse();
    meshcast_io::logging::init("info");
    let bind = match args.bind_addr() {
        Ok(b) => b,
        Err(e) => usage_error(clap::error::ErrorKind::ArgumentConflict, &e),
    };
    let has_display = display_available(
        std::env::var("DISPLAY").ok().as_deref(),
        std::env::var("WAYLAND_DISPLAY").ok().as_deref(),
    );
    match args.mode(has_display) {
        Mode::Headless => {
            let task = match (&args.watch, args.list) {
                (_, true) => Task::List,
                (Some(c), false) => Task::Watch(c.clone()),
                (None, false) => usage_error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "headless mode needs --watch NAME or --list",
                ),
            };
            let opts = HeadlessOptions {
                pops: args.pops.clone(),
                bind,
                seed: args.seed(),
                tuning: tuning(&args),
                task,
                record: args.record.clone(),
                duration: args.duration,
                stats: args.stats.clone(),
                player: args.player.and_then(PlayerChoice::kind),
            };
            ExitCode::from(headless::run(opts))
        }
        Mode::Gui => {
            if !has_display {
                usage_error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "no display (DISPLAY and WAYLAND_DISPLAY are unset): \
                     use --headless --watch NAME, or --list",
                );
            }
            if args.record.is_some() || args.stats.is_some() || args.duration.is_some() {
                tracing::warn!("--record, --stats and --duration apply to headless mode only");
            }
            let view = Arc::new(Mutex::new(ClientView::default()));
            let run = NetHandle::spawn(args.pops.clone(), args.seed(), tuning(&args), bind, view)
                .and_then(|net| {
                    meshcast_client::gui::run(
                        net,
                        args.player.unwrap_or(PlayerChoice::Mpv),
                        args.watch.clone(),
                    )
                });
            match run {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("meshcast-client: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Reports a command-line problem clap could not see by itself, like clap does (exit 2).
fn usage_error(kind: clap::error::ErrorKind, message: &str) -> ! {
    Args::command().error(kind, message).exit()
}

/// The playout latency and dual-PoP mode the command line asks for.
fn tuning(args: &meshcast_client::cli::Args) -> meshcast_client::net::Tuning {
    meshcast_client::net::Tuning {
        latency: std::time::Duration::from_millis(args.latency),
        dual: args.dual,
    }
}
