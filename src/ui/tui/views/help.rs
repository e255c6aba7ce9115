//! The help overlay, generated from the live keymap: what it shows is what the keys do.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{centered, overlay, width};
use crate::ui::tui::app::App;
use crate::ui::tui::text::fit;
use crate::ui::tui::theme::Theme;

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let ctx = app.context();
    let entries = app.opts.keymap.help(ctx);
    let key_w = entries
        .iter()
        .map(|(k, _)| width(k))
        .max()
        .unwrap_or(4)
        .min(12);
    let desc_max = entries.iter().map(|(_, d)| width(d)).max().unwrap_or(0);
    let rect = centered(
        area,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let title = format!(
        " Keys: {} screen (from your keymap; ? or Esc closes) ",
        ctx.title().to_lowercase()
    );
    let inner = overlay(frame, rect, &title, theme);
    // As many columns as fit with descriptions of up to 32 columns; then each column takes its
    // share of the width, so a longer description is cut only when the screen is narrow.
    let cols = (usize::from(inner.width) / (key_w + 2 + desc_max.min(32) + 2)).max(1);
    let entry_w = (usize::from(inner.width) / cols)
        .saturating_sub(2)
        .min(key_w + 2 + desc_max)
        .max(key_w + 3);
    let rows = entries.len().div_ceil(cols);
    let mut lines = Vec::with_capacity(rows);
    for r in 0..rows {
        let mut spans = Vec::new();
        for c in 0..cols {
            let Some((keys, desc)) = entries.get(c * rows + r) else {
                continue;
            };
            spans.push(Span::styled(fit(keys, key_w), theme.key()));
            spans.push(Span::raw("  "));
            spans.push(Span::raw(fit(desc, entry_w - key_w - 2)));
            spans.push(Span::raw("  "));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
