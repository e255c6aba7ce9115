//! The help overlay, generated from the live keymap: what it shows is what the keys do. It
//! covers the whole screen but the hint bar, so nothing of the screen beneath shows at its
//! edges; descriptions wrap rather than being cut; a legend of the markers follows the keys;
//! it scrolls, and says so on its bottom border when it is cut.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::width;
use crate::ui::tui::app::App;
use crate::ui::tui::keymap::Context;
use crate::ui::tui::text::fit;
use crate::ui::tui::theme::Theme;

/// Columns of a description below which two columns of keys are not worth it.
const MIN_DESC: usize = 28;
/// Keys wider than this (a long list from the config) are cut to it.
const MAX_KEY: usize = 14;

/// The markers of the screens, with what each means (the cluster screen draws them in
/// `views/cluster.rs`, the queue its flags in `views/queue.rs`).
const LEGEND: &[(&str, &str)] = &[
    ("≠", "the records' values of this field differ"),
    ("+", "some records have no value for this field"),
    (
        "✓",
        "the surviving value, the one the merged record keeps (✓steward: you took it)",
    ),
    ("★", "the primary record: the others are merged into it"),
    ("✗", "a record excluded from this merge"),
    (
        "∅",
        "no value (∅ (cleared): the merged record will have none)",
    ),
];

/// The help's box: the whole screen above the hint bar.
fn frame_rect(area: Rect) -> Rect {
    Rect {
        height: area.height.saturating_sub(1),
        ..area
    }
}

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App, scroll: u16, theme: Theme) {
    let ctx = app.context();
    let rect = frame_rect(area);
    let title = format!(
        " Keys: {} screen (from your keymap; ? or Esc closes) ",
        ctx.title().to_lowercase()
    );
    let inner_w = rect.width.saturating_sub(2);
    let inner_h = rect.height.saturating_sub(2);
    let lines = lines(app, ctx, usize::from(inner_w), theme);
    let total = lines.len() as u16;
    let max = total.saturating_sub(inner_h);
    let scroll = scroll.min(max);
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.title()));
    if max > 0 {
        let up = if scroll > 0 { "▲" } else { " " };
        let down = if scroll < max { "▼" } else { " " };
        let marker = format!(
            " {up}{down} lines {}–{} of {total} · j/k PgUp/PgDn scroll ",
            scroll + 1,
            (scroll + inner_h).min(total)
        );
        block = block.title_bottom(Line::styled(marker, theme.key()).right_aligned());
    }
    frame.render_widget(Clear, rect);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

/// The furthest the help scrolls on a screen of `size`: its last line at the bottom.
pub(crate) fn max_scroll(app: &App, size: (u16, u16)) -> u16 {
    let rect = frame_rect(Rect::new(0, 0, size.0, size.1));
    let n = lines(
        app,
        app.context(),
        usize::from(rect.width.saturating_sub(2)),
        Theme::new(true),
    )
    .len() as u16;
    n.saturating_sub(rect.height.saturating_sub(2))
}

/// The keys in one or two columns, each description wrapped in its column, then the legend.
fn lines(app: &App, ctx: Context, w: usize, theme: Theme) -> Vec<Line<'static>> {
    let entries = app.opts.keymap.help(ctx);
    let key_w = entries
        .iter()
        .map(|(k, _)| width(k))
        .max()
        .unwrap_or(4)
        .min(MAX_KEY);
    let cols = if w >= 2 * (key_w + 2 + MIN_DESC) + 3 {
        2
    } else {
        1
    };
    let col_w = (w.saturating_sub(3 * (cols - 1))) / cols;
    let desc_w = col_w.saturating_sub(key_w + 2).max(8);
    let per_col = entries.len().div_ceil(cols);
    let columns: Vec<Vec<Vec<Span<'static>>>> = entries
        .chunks(per_col.max(1))
        .map(|chunk| {
            let mut out = Vec::new();
            for (keys, desc) in chunk {
                for (i, part) in wrap(desc, desc_w).into_iter().enumerate() {
                    let key = if i == 0 {
                        Span::styled(fit(keys, key_w), theme.key())
                    } else {
                        Span::raw(" ".repeat(key_w))
                    };
                    out.push(vec![key, Span::raw("  "), Span::raw(fit(&part, desc_w))]);
                }
            }
            out
        })
        .collect();
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let mut lines = Vec::with_capacity(rows + LEGEND.len() + 4);
    for r in 0..rows {
        let mut spans = Vec::new();
        for (c, col) in columns.iter().enumerate() {
            if c > 0 {
                spans.push(Span::raw("   "));
            }
            match col.get(r) {
                Some(row) => spans.extend(row.iter().cloned()),
                None => spans.push(Span::raw(" ".repeat(col_w))),
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Legend", theme.header()));
    let mut legend: Vec<(&str, String)> = LEGEND.iter().map(|(m, d)| (*m, d.to_string())).collect();
    if ctx == Context::Queue {
        legend.extend(super::queue::flag_legend(&app.opts));
    }
    let marker_w = legend.iter().map(|(m, _)| width(m)).max().unwrap_or(1);
    for (marker, desc) in legend {
        for (i, part) in wrap(&desc, w.saturating_sub(marker_w + 2).max(8))
            .into_iter()
            .enumerate()
        {
            let m = if i == 0 { marker } else { "" };
            lines.push(Line::from(vec![
                Span::styled(fit(m, marker_w), theme.differs()),
                Span::raw("  "),
                Span::raw(part),
            ]));
        }
    }
    lines
}

/// `text` in lines of at most `w` columns, broken between words (a word longer than a line
/// is cut by `fit` when drawn).
fn wrap(text: &str, w: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && width(&line) + 1 + width(word) > w {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_breaks_between_words_and_keeps_every_word() {
        assert_eq!(
            wrap("why these match (scores)", 10),
            ["why these", "match", "(scores)"]
        );
        assert_eq!(wrap("short", 10), ["short"]);
        assert_eq!(wrap("", 10), [""]);
    }
}
