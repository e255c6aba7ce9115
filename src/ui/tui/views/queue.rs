//! The queue screen: counts per status, the active filter and sort, and the window of the
//! loaded page around the cursor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

use super::{age, sanitize};
use crate::store::clusters::ClusterStatus;
use crate::store::queue::StatusFilter;
use crate::ui::tui::app::{App, Options};
use crate::ui::tui::text::{fit, width};
use crate::ui::tui::theme::Theme;

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let [title, filter, heads, list] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let q = &app.queue;

    let mut spans = vec![
        Span::styled("dupdesk review", theme.title()),
        Span::raw("  "),
    ];
    let total: u64 = q.counts.iter().map(|(_, n)| n).sum();
    spans.push(Span::raw(format!("{total} clusters: ")));
    let mut first = true;
    for (status, n) in &q.counts {
        if *n == 0 && *status != ClusterStatus::Pending {
            continue;
        }
        if !first {
            spans.push(Span::styled(" · ", theme.dim()));
        }
        first = false;
        spans.push(Span::styled(
            format!("{} {n}", status.label()),
            theme.status(status.as_str()),
        ));
    }
    frame.render_widget(Line::from(spans), title);

    let mut f = vec![
        Span::styled("showing ", theme.dim()),
        Span::raw(q.query.status.label()),
    ];
    if q.query.status == StatusFilter::Open {
        f.push(Span::styled(
            " (pending, deferred, stale, attention)",
            theme.dim(),
        ));
    }
    if !q.query.text.is_empty() {
        f.push(Span::styled(" · matching ", theme.dim()));
        f.push(Span::raw(format!("\"{}\"", sanitize(&q.query.text))));
    }
    f.push(Span::styled(" · sorted by ", theme.dim()));
    f.push(Span::raw(q.query.sort.label()));
    f.push(Span::styled(
        format!(" · {}", crate::domain::words::count(q.total, "row", "rows")),
        theme.dim(),
    ));
    frame.render_widget(Line::from(f), filter);

    // The fixed columns take 48; what is left goes to the label and, a little less, the reason.
    let rest = usize::from(area.width).saturating_sub(49);
    let reason_w = (rest * 2 / 5).clamp(17, 30);
    let label_w = rest.saturating_sub(reason_w + 1);
    let head = format!(
        "  {:>8} {:>4} {:>5} {:>5} {:>5}  {:<9} {:<2} {} {}",
        "cluster",
        "size",
        "best",
        "weak",
        "age",
        "status",
        "!",
        fit("label", label_w),
        "why proposed"
    );
    frame.render_widget(Line::styled(head, theme.header()), heads);

    if q.total == 0 {
        let text = if !q.loaded_once {
            "loading…"
        } else if q.query.status == StatusFilter::Open && q.query.text.is_empty() {
            "Nothing left to review. f shows other statuses; m shows the merges."
        } else {
            "No cluster matches the filter."
        };
        frame.render_widget(Line::styled(format!("  {text}"), theme.dim()), list);
        return;
    }
    let h = u64::from(list.height.max(1));
    let start = (q.cursor / h) * h;
    let mut lines = Vec::with_capacity(list.height.into());
    for index in start..(start + h).min(q.total) {
        let Some(row) = q.row(index) else {
            lines.push(Line::styled("  …", theme.dim()));
            continue;
        };
        let selected = index == q.cursor;
        let marker = if selected { "▶ " } else { "  " };
        let label = sanitize(&row.label);
        let mut line = Line::from(vec![
            Span::raw(marker),
            Span::raw(format!(
                "{:>8} {:>4} {:>5.2} {:>5.2} {:>5}  ",
                format!("#{}", row.id),
                row.size,
                row.score,
                row.weakest,
                age(q.now, &row.created_at)
            )),
            Span::styled(
                format!("{:<9} ", row.status.short()),
                theme.status(row.status.as_str()),
            ),
        ]);
        let (weak, large) = flags(app, row.weakest, row.size);
        line.push_span(Span::styled(if weak { "W" } else { " " }, theme.differs()));
        line.push_span(Span::styled(if large { "L" } else { " " }, theme.differs()));
        line.push_span(Span::raw(" "));
        line.push_span(Span::raw(fit(&label, label_w)));
        line.push_span(Span::raw(" "));
        // Reasons name fields, which come from the matcher's stored explanation: untrusted.
        let reason = q
            .reasons
            .get(&row.id)
            .map(|r| {
                // Narrow: "same email, ≈name" rather than a cut "same email, simil…".
                if width(r) > reason_w {
                    sanitize(&r.replace("similar ", "≈")).into_owned()
                } else {
                    sanitize(r).into_owned()
                }
            })
            .unwrap_or_default();
        line.push_span(Span::styled(fit(&reason, reason_w), theme.dim()));
        if selected {
            line = line.style(theme.cursor());
        }
        lines.push(line);
    }
    frame.render_widget(ratatui::widgets::Paragraph::new(lines), list);
}

/// Whether a cluster is weak (its weakest pair below `[ui] weak_below`) and large (more
/// records than `[ui] large_above`).
fn flags(app: &App, weakest: f64, size: u32) -> (bool, bool) {
    (weakest < app.opts.weak_below, size > app.opts.large_above)
}

/// What the flags column and the reason mean, for the help's legend.
pub(super) fn flag_legend(opts: &Options) -> Vec<(&'static str, String)> {
    vec![
        (
            "W",
            format!(
                "weak: the cluster's weakest pair scores below {} ([ui] weak_below)",
                opts.weak_below
            ),
        ),
        (
            "L",
            format!(
                "large: more than {} records ([ui] large_above); check each one",
                opts.large_above
            ),
        ),
        (
            "why",
            "why proposed: what its strongest pair agrees on (≈ similar); e shows every score"
                .to_string(),
        ),
    ]
}
