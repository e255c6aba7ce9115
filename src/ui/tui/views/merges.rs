//! The merges screen: approved clusters and their merge jobs as the executor's journal holds
//! them (state, attempts, steps, the CRM's error message), failures first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::sanitize;
use crate::store::clusters::JobStatus;
use crate::ui::tui::app::App;
use crate::ui::tui::text::fit;
use crate::ui::tui::theme::Theme;

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let [title, heads, list, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(4),
    ])
    .areas(area);
    let m = &app.merges;
    let failed = m
        .rows
        .iter()
        .filter(|r| {
            r.job
                .as_ref()
                .is_some_and(|j| j.status == JobStatus::Failed)
                || r.cluster_status.as_str() == "failed"
        })
        .count();
    frame.render_widget(
        Line::from(vec![
            Span::styled("Merges", theme.title()),
            Span::raw(format!("  {} approved clusters · ", m.rows.len())),
            Span::styled(
                format!("{failed} failed"),
                theme.status(if failed > 0 { "failed" } else { "" }),
            ),
        ]),
        title,
    );
    let label_w = usize::from(area.width).saturating_sub(54);
    frame.render_widget(
        Line::styled(
            format!(
                "  {:>8} {:>4}  {:<9} {:>6}  {:<8} {:>3} {:>5}  {}",
                "cluster", "size", "status", "job", "job", "try", "steps", "label"
            ),
            theme.header(),
        ),
        heads,
    );
    if m.rows.is_empty() {
        let text = if m.loading {
            "loading…"
        } else {
            "No approved clusters yet: approve one from the queue (a)."
        };
        frame.render_widget(Line::styled(format!("  {text}"), theme.dim()), list);
        return;
    }
    let h = usize::from(list.height.max(1));
    let start = (m.cursor / h) * h;
    let mut lines = Vec::new();
    for (i, r) in m.rows.iter().enumerate().skip(start).take(h) {
        let selected = i == m.cursor;
        let (job, state, tries, steps) = match &r.job {
            Some(j) => (
                format!("#{}", j.id),
                j.status.to_string(),
                j.attempts.to_string(),
                format!("{}/{}", j.steps_done, j.steps),
            ),
            None => ("—".into(), "no job".into(), String::new(), String::new()),
        };
        let mut line = Line::from(vec![
            Span::raw(if selected { "▶ " } else { "  " }),
            Span::raw(format!(
                "{:>8} {:>4}  ",
                format!("#{}", r.cluster_id),
                r.size
            )),
            Span::styled(
                format!("{:<9} ", r.cluster_status.as_str()),
                theme.status(r.cluster_status.as_str()),
            ),
            Span::raw(format!("{job:>6}  ")),
            Span::styled(format!("{state:<8} "), theme.status(&state)),
            Span::raw(format!("{tries:>3} {steps:>5}  ")),
            Span::raw(fit(&sanitize(&r.label), label_w)),
        ]);
        if selected {
            line = line.style(theme.cursor());
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), list);

    let mut d = Vec::new();
    if let Some(r) = m.rows.get(m.cursor) {
        match &r.job {
            Some(j) => {
                d.push(Line::from(vec![
                    Span::styled(format!("job #{} ", j.id), theme.header()),
                    Span::styled(
                        format!(
                            "{} · {} · survivor {} · updated {}",
                            j.status,
                            crate::domain::words::count(j.attempts, "attempt", "attempts"),
                            j.survivor_id.as_deref().map(sanitize).unwrap_or("—".into()),
                            j.updated_at
                        ),
                        theme.dim(),
                    ),
                ]));
                if let Some(err) = &j.last_error {
                    let at = j
                        .failed_step
                        .map(|s| format!("the {s} step failed: "))
                        .unwrap_or_else(|| "CRM said: ".to_string());
                    d.push(Line::from(vec![
                        Span::styled(at, theme.error()),
                        Span::raw(sanitize(err).into_owned()),
                    ]));
                }
            }
            None => d.push(Line::styled(
                "Approved; waiting for the executor to plan its merge (dupdesk apply).",
                theme.dim(),
            )),
        }
    }
    frame.render_widget(Paragraph::new(d).wrap(Wrap { trim: false }), detail);
}
