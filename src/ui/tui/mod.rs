//! The review terminal UI: a thin owner of terminal state over the domain. Key presses become
//! commands only through the [`keymap`]; the [`app`] routes them to the top of the
//! [`overlays`] stack or to the current one of the [`screens`], each of which owns its state
//! and answers with effects; the app runs those as [`tasks`] that answer through message
//! enums; [`views`] draw by reading the app. This module runs the event loop and guarantees
//! the terminal is restored on every way out: a normal quit, an error, a panic (ratatui's
//! panic hook) and SIGTERM/SIGHUP. It holds no business rules: every decision is built by the
//! domain's review draft and written through `store::decisions`, which work without a terminal.

pub mod app;
pub mod keymap;
pub mod options;
pub mod overlays;
pub mod screens;
pub mod tasks;
pub mod text;
pub mod theme;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;

pub use app::{Action, App, Inbox, Msg, Options, Progress, Screen, Stage};

use crate::config::Config;
use crate::store::Store;

/// Run the review UI on `store` until the steward quits. `background`, when given, carries the
/// progress of a pull, match or merge task running alongside (the demo passes one).
pub async fn run(
    store: Store,
    config: &Config,
    background: Option<mpsc::Receiver<Progress>>,
) -> Result<()> {
    run_with_merges(store, config, background, None).await
}

/// [`run`], with `apply` asking a background task to run the approved merges (the `A` key).
pub async fn run_with_merges(
    store: Store,
    config: &Config,
    background: Option<mpsc::Receiver<Progress>>,
    apply: Option<mpsc::UnboundedSender<()>>,
) -> Result<()> {
    let mut opts = Options::from_config(config)?;
    opts.apply = apply;
    let (mut app, inbox) = App::new(store, opts);
    app.start();
    // Installs a panic hook that restores the terminal before the panic message prints.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            // Raw mode may be on already.
            ratatui::restore();
            return Err(e).context("setting up the terminal");
        }
    };
    let result = event_loop(&mut terminal, &mut app, inbox, background).await;
    ratatui::restore();
    result
}

/// Key presses and resizes, read on a thread of their own because crossterm's reader blocks.
fn spawn_input(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("dupdesk-input".into())
        .spawn(move || {
            // Polling with a timeout lets the thread notice the UI has gone, so it does not
            // swallow keys typed into the shell afterwards.
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reading terminal input");
                            break;
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "polling terminal input");
                        break;
                    }
                }
            }
        })
        .ok();
    rx
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    mut inbox: Inbox,
    background: Option<mpsc::Receiver<Progress>>,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut input = spawn_input(stop.clone());
    let mut background = background;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
    if let Ok(size) = terminal.size() {
        app.update(Action::Resize(size.width, size.height));
    }
    let result: Result<()> = async {
        loop {
            if app.take_dirty() {
                terminal.draw(|f| views::draw(f, app))?;
                app.mark_drawn();
            }
            if app.should_quit() {
                return match app.crashed() {
                    Some(e) => Err(anyhow::anyhow!("a background task failed: {e}")),
                    None => Ok(()),
                };
            }
            tokio::select! {
                ev = input.recv() => {
                    let Some(ev) = ev else { return Ok(()) };
                    handle_event(app, ev);
                    // Collapse bursts (a resize drag, a held key) into one redraw.
                    while let Ok(ev) = input.try_recv() {
                        handle_event(app, ev);
                    }
                }
                msg = inbox.recv() => {
                    if let Some(msg) = msg {
                        app.on_message(msg);
                    }
                    while let Some(msg) = inbox.try_recv() {
                        app.on_message(msg);
                    }
                }
                p = recv_progress(&mut background) => match p {
                    Some(p) => app.on_message(Msg::Progress(p)),
                    None => background = None,
                },
                _ = term.recv() => {
                    tracing::info!("SIGTERM: leaving the review");
                    return Ok(());
                }
                _ = hup.recv() => return Ok(()),
            }
        }
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    result
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).context("listening for signals")
}

async fn recv_progress(rx: &mut Option<mpsc::Receiver<Progress>>) -> Option<Progress> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn handle_event(app: &mut App, ev: Event) {
    match ev {
        Event::Key(key) => app.on_key(&key),
        Event::Resize(w, h) => app.update(Action::Resize(w, h)),
        _ => {}
    }
}
