//! The desktop window: PoPs with live RTT, the channel list with Play/Stop, a status line and
//! the player selector.
//!
//! The window never touches the network: it sends [`ClientCommand`]s to the network thread
//! ([`crate::net`]) and draws a snapshot of the shared [`ClientView`], which the network side
//! updates and repaints on its own. Drawing lives in [`App::ui`], which takes a plain
//! [`egui::Ui`], so tests drive it with `egui_kittest` and a fake view, no window and no
//! network.
//!
//! Playing a channel: spawn the chosen player (on the network thread's runtime, forked from
//! the UI thread, which lives as long as the process), hand its [`crate::player::MediaSink`]
//! to the view, then ask the machine to watch. Stopping reverses that; dropping the
//! [`Player`] kills the process. The network hooks end a play on their own when the player
//! goes away; the next frame notices and drops the handle.

use crate::headless::{fps, resolution};
use crate::net::{ClientView, NetHandle, SharedView, lock};
use crate::player::{Player, PlayerChoice};
use egui::{Color32, RichText};
use meshcast_proto::client::ClientCommand;
use tokio::sync::mpsc;

/// How long closing the window waits for the network thread to unwatch and stop.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The meshcast window.
#[derive(Debug)]
pub struct App {
    view: SharedView,
    commands: mpsc::Sender<ClientCommand>,
    runtime: Option<tokio::runtime::Handle>,
    player_choice: PlayerChoice,
    player: Option<Player>,
    autoplay: Option<String>,
    /// Owned so that closing the window (dropping the app) stops the network thread.
    net: Option<NetHandle>,
}

impl App {
    /// A window over `view` sending to `commands`. Players are spawned on `runtime`; without
    /// one only [`PlayerChoice::None`] can play (tests).
    pub fn new(
        view: SharedView,
        commands: mpsc::Sender<ClientCommand>,
        runtime: Option<tokio::runtime::Handle>,
        player_choice: PlayerChoice,
    ) -> Self {
        Self {
            view,
            commands,
            runtime,
            player_choice,
            player: None,
            autoplay: None,
            net: None,
        }
    }

    /// A window driving a running network thread (and owning it).
    pub fn with_net(net: NetHandle, player_choice: PlayerChoice) -> Self {
        let mut app = Self::new(
            net.view.clone(),
            net.commands.clone(),
            Some(net.runtime.clone()),
            player_choice,
        );
        app.net = Some(net);
        app
    }

    /// Plays `channel` on the first frame (`--watch` in GUI mode).
    pub fn autoplay(mut self, channel: Option<String>) -> Self {
        self.autoplay = channel;
        self
    }

    /// The selected player.
    pub fn player_choice(&self) -> PlayerChoice {
        self.player_choice
    }

    /// Starts the player and watches `channel` (stopping whatever played before).
    pub fn play(&mut self, channel: &str) {
        self.stop();
        let sink = match self.player_choice.kind() {
            None => None,
            Some(kind) => {
                let started = match &self.runtime {
                    Some(rt) => Player::spawn(rt, kind, channel).map_err(|e| e.to_string()),
                    None => Err("no network runtime to run the player on".to_owned()),
                };
                match started {
                    Ok(p) => {
                        let sink = p.sink();
                        self.player = Some(p);
                        Some(sink)
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        lock(&self.view).notice = Some(e);
                        return;
                    }
                }
            }
        };
        {
            // The sink must be in place before the watch: media may follow at once.
            let mut v = lock(&self.view);
            v.playing = Some(channel.to_owned());
            v.sink = sink;
            v.report = None;
            v.notice = None;
            v.player_drops = 0;
        }
        self.send(ClientCommand::Watch(channel.to_owned()));
    }

    /// Stops the playing channel and kills its player.
    pub fn stop(&mut self) {
        let channel = {
            let mut v = lock(&self.view);
            v.sink = None;
            v.playing.take()
        };
        self.player = None;
        if let Some(c) = channel {
            self.send(ClientCommand::Stop(c));
        }
    }

    fn send(&mut self, command: ClientCommand) {
        // Never block the UI thread: a full queue means the network thread is stuck or gone.
        if let Err(e) = self.commands.try_send(command) {
            tracing::error!("network thread not taking commands: {e}");
            lock(&self.view).notice = Some("network thread not running".to_owned());
        }
    }

    /// Draws the whole window into `ui` and acts on clicks.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let snapshot = {
            let mut v = lock(&self.view);
            if v.repaint.is_none() {
                v.repaint = Some(ui.ctx().clone());
            }
            v.clone()
        };
        // The network side ended the play (player gone, unknown channel): drop the handle.
        if snapshot.playing.is_none() && self.player.is_some() {
            self.player = None;
        }
        if let Some(c) = self.autoplay.take() {
            self.play(&c);
        }

        egui::Panel::top("controls").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("meshcast");
                ui.separator();
                egui::ComboBox::from_label("Player")
                    .selected_text(self.player_choice.label())
                    .show_ui(ui, |ui| {
                        for c in [PlayerChoice::Mpv, PlayerChoice::Ffplay, PlayerChoice::None] {
                            ui.selectable_value(&mut self.player_choice, c, c.label());
                        }
                    });
                ui.separator();
                if ui.button("Refresh channels").clicked() {
                    self.send(ClientCommand::RefreshChannels);
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.label(status_line(&snapshot));
            if let Some(n) = &snapshot.notice {
                ui.label(RichText::new(n).color(Color32::from_rgb(230, 150, 40)));
            }
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.heading("Points of presence");
                pop_grid(ui, &snapshot);
                ui.add_space(12.0);
                ui.heading("Channels");
                if let Some(action) = channel_grid(ui, &snapshot) {
                    match action {
                        Action::Play(c) => self.play(&c),
                        Action::Stop => self.stop(),
                    }
                }
            });
        });
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        App::ui(self, ui);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Closing the window: stop the watch (the PoP hears an unwatch), kill the player,
        // then stop and join the network thread (NetHandle's drop).
        self.stop();
        if let Some(mut net) = self.net.take() {
            net.close(CLOSE_GRACE);
        }
    }
}

enum Action {
    Play(String),
    Stop,
}

/// RTT in milliseconds with two decimals, as shown in the PoP list.
pub fn rtt_text(srtt: Option<std::time::Duration>) -> String {
    srtt.map_or_else(
        || "–".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0),
    )
}

fn pop_grid(ui: &mut egui::Ui, v: &ClientView) {
    if v.pops.is_empty() {
        ui.label("no PoPs configured");
        return;
    }
    egui::Grid::new("pops")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in ["", "PoP", "RTT", "state", "channels"] {
                ui.strong(h);
            }
            ui.end_row();
            for p in &v.pops {
                if p.selected {
                    ui.label(
                        RichText::new("selected")
                            .strong()
                            .color(Color32::from_rgb(80, 160, 255)),
                    );
                } else {
                    ui.label("");
                }
                ui.label(p.addr.to_string());
                ui.label(rtt_text(p.srtt));
                if p.alive {
                    ui.colored_label(Color32::from_rgb(60, 180, 75), "alive");
                } else {
                    ui.colored_label(Color32::from_rgb(220, 60, 60), "dead");
                }
                ui.label(p.channels.to_string());
                ui.end_row();
            }
        });
}

fn channel_grid(ui: &mut egui::Ui, v: &ClientView) -> Option<Action> {
    if v.channels.is_empty() {
        let msg = if v.pops.iter().any(|p| p.selected) {
            "no channels (yet)"
        } else {
            "waiting for a PoP to answer…"
        };
        ui.label(msg);
        return None;
    }
    let mut action = None;
    egui::Grid::new("channels")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for h in ["name", "codec", "resolution", "fps", "kbit/s", ""] {
                ui.strong(h);
            }
            ui.end_row();
            for c in &v.channels {
                let playing = v.playing.as_deref() == Some(c.name.as_str());
                ui.label(&c.name);
                ui.label(&c.codec);
                ui.label(resolution(c));
                ui.label(fps(c));
                ui.label(c.bitrate_kbps.to_string());
                if playing {
                    if ui.button("Stop").clicked() {
                        action = Some(Action::Stop);
                    }
                } else if ui.button("Play").clicked() {
                    action = Some(Action::Play(c.name.clone()));
                }
                ui.end_row();
            }
        });
    action
}

/// The status line: current PoP, playing channel and its live KPIs.
pub fn status_line(v: &ClientView) -> String {
    let pop = v
        .pops
        .iter()
        .find(|p| p.selected)
        .map_or_else(|| "none".to_owned(), |p| p.addr.to_string());
    let mut s = format!("PoP: {pop}");
    match &v.playing {
        None => s.push_str(" · not playing"),
        Some(c) => s.push_str(&format!(" · playing: {c}")),
    }
    if let Some(r) = &v.report {
        let startup = r
            .startup_ms
            .map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0} ms"));
        s.push_str(&format!(
            " · {} · {} packets · {} continuity errors · {} stalls · startup {startup}",
            human_bytes(r.bytes),
            r.media_packets,
            r.continuity_errors,
            r.stalls.len(),
        ));
    }
    if v.player_drops > 0 {
        s.push_str(&format!(" · {} dropped at the player", v.player_drops));
    }
    s
}

fn human_bytes(b: u64) -> String {
    match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        _ => format!("{:.2} MB", b as f64 / 1e6),
    }
}

/// Opens the window and runs until it is closed.
pub fn run(
    net: NetHandle,
    player_choice: PlayerChoice,
    autoplay: Option<String>,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([860.0, 520.0])
            .with_title("meshcast"),
        ..Default::default()
    };
    let result = eframe::run_native(
        "meshcast",
        options,
        Box::new(move |cc| {
            lock(&net.view).repaint = Some(cc.egui_ctx.clone());
            Ok(Box::new(
                App::with_net(net, player_choice).autoplay(autoplay),
            ))
        }),
    );
    result.map_err(|e| anyhow::anyhow!("the window failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshcast_proto::stats::ViewerReport;

    #[test]
    fn rtt_shows_milliseconds_with_two_decimals() {
        assert_eq!(
            rtt_text(Some(std::time::Duration::from_micros(420))),
            "0.42 ms"
        );
        assert_eq!(
            rtt_text(Some(std::time::Duration::from_micros(12_345))),
            "12.35 ms"
        );
        assert_eq!(rtt_text(None), "–");
    }

    #[test]
    fn status_line_names_pop_channel_and_counters() {
        let mut v = ClientView {
            playing: Some("news".into()),
            ..Default::default()
        };
        v.report = Some(ViewerReport {
            bytes: 2_500_000,
            media_packets: 1900,
            continuity_errors: 3,
            startup_ms: Some(412.4),
            ..Default::default()
        });
        let s = status_line(&v);
        assert_eq!(
            s,
            "PoP: none · playing: news · 2.50 MB · 1900 packets · 3 continuity errors · \
             0 stalls · startup 412 ms"
        );
    }
}
