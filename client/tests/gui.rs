//! The window's drawing code under egui_kittest: a fake view, no display, no network.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use meshcast_client::gui::App;
use meshcast_client::net::{ClientView, SharedView, lock};
use meshcast_client::player::PlayerChoice;
use meshcast_proto::client::{ClientCommand, PopView};
use meshcast_proto::wire::ChannelInfo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

fn channel(name: &str, kbps: u32) -> ChannelInfo {
    ChannelInfo {
        stream: kbps,
        name: name.into(),
        codec: "h264".into(),
        width: 1280,
        height: 720,
        fps_milli: 30_000,
        bitrate_kbps: kbps,
    }
}

fn fake_view() -> SharedView {
    Arc::new(Mutex::new(ClientView {
        pops: vec![
            PopView {
                addr: "127.0.0.1:7001".parse().unwrap(),
                srtt: Some(Duration::from_micros(420)),
                alive: true,
                channels: 2,
                selected: true,
            },
            PopView {
                addr: "127.0.0.2:7001".parse().unwrap(),
                srtt: Some(Duration::from_micros(3_100)),
                alive: false,
                channels: 0,
                selected: false,
            },
        ],
        channels: vec![channel("alpha", 2500), channel("beta", 800)],
        ..Default::default()
    }))
}

fn harness<'a>(view: &SharedView, tx: mpsc::Sender<ClientCommand>) -> Harness<'a, App> {
    let app = App::new(view.clone(), tx, None, PlayerChoice::None);
    Harness::builder()
        .with_size(egui::vec2(860.0, 520.0))
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app)
}

#[test]
fn pops_show_rtt_state_and_the_selected_marker() {
    let view = fake_view();
    let (tx, _rx) = mpsc::channel(8);
    let mut h = harness(&view, tx);
    h.run();
    h.get_by_label("127.0.0.1:7001");
    h.get_by_label("127.0.0.2:7001");
    h.get_by_label("0.42 ms");
    h.get_by_label("3.10 ms");
    h.get_by_label("alive");
    h.get_by_label("dead");
    assert_eq!(h.get_all_by_label("selected").count(), 1);
    h.get_by_label("alpha");
    h.get_by_label("beta");
    assert_eq!(h.get_all_by_label("1280x720").count(), 2);
    h.get_by_label_contains("PoP: 127.0.0.1:7001");
}

#[test]
fn play_sends_a_watch_for_that_channel_and_stop_sends_a_stop() {
    let view = fake_view();
    let (tx, mut rx) = mpsc::channel(8);
    let mut h = harness(&view, tx);
    h.run();
    let plays: Vec<_> = h.get_all_by_label("Play").collect();
    assert_eq!(plays.len(), 2);
    plays[1].click();
    h.run();
    assert_eq!(rx.try_recv().unwrap(), ClientCommand::Watch("beta".into()));
    assert_eq!(lock(&view).playing.as_deref(), Some("beta"));
    h.get_by_label_contains("playing: beta");
    // Only the other channel can still be started; the playing one offers Stop.
    assert_eq!(h.get_all_by_label("Play").count(), 1);
    h.get_by_label("Stop").click();
    h.run();
    assert_eq!(rx.try_recv().unwrap(), ClientCommand::Stop("beta".into()));
    assert_eq!(lock(&view).playing, None);
    assert!(rx.try_recv().is_err(), "nothing else sent");
}

#[test]
fn the_window_follows_the_shared_view_without_input() {
    let view = fake_view();
    let (tx, _rx) = mpsc::channel(8);
    let mut h = harness(&view, tx);
    h.run();
    h.get_by_label("0.42 ms");
    assert!(
        lock(&view).repaint.is_some(),
        "the UI handed its context to the network side"
    );
    lock(&view).pops[0].srtt = Some(Duration::from_micros(1_500));
    h.run();
    h.get_by_label("1.50 ms");
    assert!(h.query_by_label("0.42 ms").is_none());
}

#[test]
fn refresh_asks_for_the_channel_list() {
    let view = fake_view();
    let (tx, mut rx) = mpsc::channel(8);
    let mut h = harness(&view, tx);
    h.run();
    h.get_by_label("Refresh channels").click();
    h.run();
    assert_eq!(rx.try_recv().unwrap(), ClientCommand::RefreshChannels);
}

#[test]
fn a_player_that_cannot_start_is_reported_in_the_status_line() {
    let view = fake_view();
    let (tx, mut rx) = mpsc::channel(8);
    // No runtime to run a player on: starting mpv must fail cleanly, not panic.
    let app = App::new(view.clone(), tx, None, PlayerChoice::Mpv);
    let mut h = Harness::builder()
        .with_size(egui::vec2(860.0, 520.0))
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app);
    h.run();
    h.get_all_by_label("Play").next().unwrap().click();
    h.run();
    assert!(rx.try_recv().is_err(), "no watch without a player");
    h.get_by_label_contains("no network runtime");
}

#[test]
fn window_snapshot() {
    let view = fake_view();
    let (tx, _rx) = mpsc::channel(8);
    let mut h = harness(&view, tx);
    h.run();
    h.snapshot("client_window");
}
