//! Rendering: a pure read of [`App`] into a ratatui frame. No I/O, no SQL, no awaits, no state
//! changes here; every record value passes through `sanitize` before it becomes a span. Each
//! screen has its file; the chrome (title, status bar, hint bar, overlays) is shared here.

mod cluster;
mod help;
mod merges;
mod queue;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, Screen, Stage};
use super::keymap::Command;
use super::overlays::{Confirmation, Overlay, PromptKind};
use super::text::{sanitize, truncate, width};
use super::theme::Theme;

pub use crate::ui::tui::app::MIN_SIZE;

/// How far the help scrolls on a screen of `size` (see [`help`]).
pub(crate) fn help_max_scroll(app: &App, size: (u16, u16)) -> u16 {
    help::max_scroll(app, size)
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = Theme::with_palette(app.opts.no_color, app.opts.palette);
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        too_small(frame, area, theme);
        return;
    }
    let [body, status, hints] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    match app.screen {
        Screen::Queue => queue::draw(frame, body, app, theme),
        Screen::Cluster => match app.cluster.as_deref() {
            Some(cl) => cluster::draw(frame, body, app, cl, theme),
            None => queue::draw(frame, body, app, theme),
        },
        Screen::Merges => merges::draw(frame, body, app, theme),
    }
    status_bar(frame, status, app, theme);
    hint_bar(frame, hints, app, theme);
    // Bottom first: the cluster's own views over its screen, the app's boxes over all.
    for overlay in app.overlays.iter() {
        match overlay {
            Overlay::Help { scroll } => help::draw(frame, area, app, *scroll, theme),
            Overlay::Confirm(question) => draw_confirm(frame, area, app, question, theme),
            Overlay::Explain { scroll } => {
                if let Some(cl) = app.cluster.as_deref() {
                    cluster::draw_explain(frame, body, cl, *scroll, theme);
                }
            }
            Overlay::Lineage { id, text, scroll } => {
                cluster::draw_lineage(frame, body, id, text, *scroll, theme)
            }
            // Typed in the status bar.
            Overlay::Prompt(_) => {}
        }
    }
}

/// The question before something irreversible: what it will do, and the keys that answer.
fn draw_confirm(frame: &mut Frame, area: Rect, app: &App, question: &Confirmation, theme: Theme) {
    let keys = &app.opts.keymap;
    let answer = format!(
        "{}: {} · {}: not now",
        keys.label(crate::ui::tui::keymap::Command::Confirm),
        question.on_yes.verb(),
        keys.label(crate::ui::tui::keymap::Command::Cancel)
    );
    let w = question
        .lines
        .iter()
        .map(|l| width(l))
        .chain([width(&answer), width(&question.title)])
        .max()
        .unwrap_or(40) as u16
        + 6;
    let h = question.lines.len() as u16 + 4;
    let rect = centered(area, w.min(area.width), h.min(area.height));
    let inner = overlay(frame, rect, &format!(" {} ", question.title), theme);
    let mut lines: Vec<Line> = question
        .lines
        .iter()
        .map(|l| Line::raw(sanitize(l).into_owned()))
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(answer, theme.key()));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn too_small(frame: &mut Frame, area: Rect, theme: Theme) {
    let text = vec![
        Line::styled("Terminal too small", theme.error()),
        Line::raw(format!(
            "{}x{} here; dupdesk needs at least {}x{}.",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        )),
        Line::raw("Enlarge the window, or press Ctrl-c to quit."),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let rect = Rect {
        y: area.y + top,
        height: area.height.saturating_sub(top),
        ..area
    };
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        rect,
    );
}

fn status_bar(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let mut spans: Vec<Span> = Vec::new();
    if let Some(p) = app.overlays.prompt() {
        let label = match p.kind {
            PromptKind::Filter => "filter (text, status:NAME): ".to_string(),
            PromptKind::Note => "note: ".to_string(),
            PromptKind::Value => {
                let field = app
                    .cluster
                    .as_deref()
                    .and_then(|c| c.editing.as_deref())
                    .unwrap_or("value");
                format!("{}: ", truncate(&sanitize(field), 24))
            }
        };
        let label = label.as_str();
        spans.push(Span::styled(label.to_string(), theme.key()));
        let room = usize::from(area.width).saturating_sub(width(label) + 30);
        let text = sanitize(&p.text);
        // Show the end of a long input, where the typing happens.
        let shown: String = if width(&text) > room {
            let skip = text.chars().count().saturating_sub(room.saturating_sub(1));
            format!("…{}", text.chars().skip(skip).collect::<String>())
        } else {
            text.into_owned()
        };
        spans.push(Span::raw(shown));
        spans.push(Span::styled("▏", theme.key()));
        let keys = match p.kind {
            PromptKind::Filter => "  Enter keep · Esc clear",
            PromptKind::Note | PromptKind::Value => "  Enter save · Esc cancel",
        };
        spans.push(Span::styled(keys, theme.dim()));
        frame.render_widget(Line::from(spans), area);
        return;
    }
    if let Some(f) = &app.flash {
        let style = if f.error { theme.error() } else { theme.ok() };
        let mark = if f.error { "✗ " } else { "✓ " };
        spans.push(Span::styled(mark, style));
        spans.push(Span::styled(sanitize(&f.text).into_owned(), style));
    } else if app.saving {
        spans.push(Span::raw("saving…"));
    } else if app.busy() {
        spans.push(Span::styled("loading…", theme.dim()));
    }
    if let Some(p) = &app.progress {
        let used: usize = spans.iter().map(|s| width(&s.content)).sum();
        let text = progress_text(p);
        let room = usize::from(area.width).saturating_sub(used + 2);
        let text = truncate(&text, room).into_owned();
        let pad = usize::from(area.width).saturating_sub(used + width(&text));
        spans.push(Span::raw(" ".repeat(pad)));
        let style = if p.stage == Stage::Failed {
            theme.error()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(text, style));
    }
    frame.render_widget(Line::from(spans), area);
}

fn progress_text(p: &super::app::Progress) -> String {
    let count = match p.total {
        Some(t) if t > 0 => format!(" {}% ({}/{})", p.done * 100 / t, p.done, t),
        _ if p.done > 0 => format!(" {}", p.done),
        _ => String::new(),
    };
    let msg = if p.message.is_empty() {
        String::new()
    } else {
        format!(" · {}", sanitize(&p.message))
    };
    format!("{}{count}{msg}", p.stage.label())
}

/// The hint bar: the screen's main commands with their live keys.
fn hint_bar(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let commands: &[Command] = if let Some(own) = app.overlays.hints() {
        own
    } else {
        match app.screen {
            Screen::Queue => &[
                Command::Open,
                Command::Filter,
                Command::Sort,
                Command::Status,
                Command::Merges,
                Command::Undo,
                Command::Help,
                Command::Back,
            ],
            Screen::Cluster if app.cluster.as_deref().is_some_and(|c| c.stacked.is_some()) => &[
                Command::TakeValue,
                Command::Down,
                Command::PageDown,
                Command::Stack,
                Command::Help,
                Command::Back,
            ],
            // A merged cluster has nothing to approve or reject.
            Screen::Cluster
                if app
                    .cluster
                    .as_deref()
                    .is_some_and(|c| c.already_merged().is_some()) =>
            {
                &[
                    Command::Next,
                    Command::Note,
                    Command::Lineage,
                    Command::Explain,
                    Command::Help,
                    Command::Back,
                ]
            }
            Screen::Cluster => &[
                Command::Approve,
                Command::Reject,
                Command::Defer,
                Command::Next,
                Command::TakeValue,
                Command::MakePrimary,
                Command::Exclude,
                Command::Undo,
                Command::Explain,
                Command::Help,
                Command::Back,
                Command::Stack,
            ],
            Screen::Merges => &[
                Command::ApplyMerges,
                Command::Retry,
                Command::Refresh,
                Command::Help,
                Command::Back,
            ],
        }
    };
    let mut hints: Vec<(Command, String, &str)> = commands
        .iter()
        .filter_map(|&cmd| {
            let key = app.opts.keymap.keys(cmd).first()?.to_string();
            let word = match (cmd, app.screen) {
                (Command::Back, Screen::Queue) => "quit",
                _ => hint_word(cmd),
            };
            Some((cmd, key, word))
        })
        .collect();
    let used = |hints: &[(Command, String, &str)]| -> usize {
        hints
            .iter()
            .map(|(_, key, word)| width(key) + 1 + width(word) + 2)
            .sum()
    };
    // Too narrow: the last hints go first, but never the help's, which leads to all others.
    while used(&hints) > usize::from(area.width) {
        let Some(i) = hints.iter().rposition(|(cmd, _, _)| *cmd != Command::Help) else {
            break;
        };
        hints.remove(i);
    }
    let mut spans = Vec::new();
    for (_, key, word) in hints {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {word}  ")));
    }
    frame.render_widget(Line::from(spans), area);
}

fn hint_word(cmd: Command) -> &'static str {
    match cmd {
        Command::TakeValue => "take",
        Command::TakeRecord => "take all",
        Command::TypeValue => "type",
        Command::ClearValue => "clear",
        Command::Stack => "stacked",
        Command::PageDown => "scroll",
        Command::Down => "record",
        Command::MakePrimary => "primary",
        Command::Status => "status",
        Command::Back => "back",
        other => other.name(),
    }
}

/// A centered rectangle of at most `w` x `h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// An overlay box with a title, cleared underneath. The rows it covers are cleared across the
/// whole width, and the row above and below it where they are not the screen's first line or
/// its status and hint bars, so no character of the screen beneath shows at its edges.
fn overlay(frame: &mut Frame, rect: Rect, title: &str, theme: Theme) -> Rect {
    let screen = frame.area();
    let top = if rect.y > screen.y + 1 {
        rect.y - 1
    } else {
        rect.y
    };
    let bottom =
        (rect.y + rect.height + 1).min(screen.height.saturating_sub(2).max(rect.y + rect.height));
    frame.render_widget(
        Clear,
        Rect {
            x: screen.x,
            y: top,
            width: screen.width,
            height: bottom.saturating_sub(top),
        },
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.title()));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

/// "3m", "5h", "12d": how long ago `ts` was.
fn age(now: chrono::DateTime<chrono::Utc>, ts: &str) -> String {
    let Some(t) = crate::domain::model::parse_ts(ts) else {
        return "?".into();
    };
    let secs = (now - t).num_seconds().max(0);
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
