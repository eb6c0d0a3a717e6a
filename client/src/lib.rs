//! `meshcast-client`: watch meshcast channels in a desktop window, or headless for scripts,
//! the lab and tests.
//!
//! # Layout
//!
//! - [`cli`]: command line, mode choice (GUI or headless), default bind address.
//! - [`net`]: the GUI's network thread — the `Client` machine on the one io driver — and the
//!   shared [`net::ClientView`] it keeps current.
//! - [`gui`]: the egui [`gui::App`]; drawing in [`gui::App::ui`], testable with egui_kittest.
//! - [`headless`]: `--list`, or watch/record/measure one channel and exit with a verdict.
//! - [`player`]: mpv/ffplay reading the stream on stdin through a bounded, never-blocking
//!   queue; never outlives the client.
//! - [`record`]: the raw recording and the atomically written stats file.
//!
//! Protocol decisions all live in `meshcast_proto::client::Client`; this crate only runs it,
//! shows it and moves its media bytes to files and players.

pub mod cli;
pub mod gui;
pub mod headless;
pub mod net;
pub mod player;
pub mod record;
