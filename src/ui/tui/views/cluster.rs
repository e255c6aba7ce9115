//! The cluster screen: one column per record, one row per field, the surviving value and its
//! reason in their own columns, differences marked by a symbol (≠ differs, + some records lack
//! a value) as well as colour, differing characters highlighted, a detail line with the whole
//! value under the cursor, and the match explanation as an overlay.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{centered, overlay, sanitize, truncate, width};
use crate::domain::diff::FieldAgreement;
use crate::store::clusters::ClusterStatus;
use crate::ui::tui::app::App;
use crate::ui::tui::screens::cluster::{Cell, ClusterScreen as ClusterState};
use crate::ui::tui::text::{fit, prefix};
use crate::ui::tui::theme::Theme;

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App, cl: &ClusterState, theme: Theme) {
    let notice = notice(cl);
    let notes = cl.notes();
    let [title, notice_area, notes_area, heads, grid, detail] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(notice.is_some())),
        Constraint::Length(u16::from(!notes.is_empty())),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(3),
    ])
    .areas(area);
    if let Some(newest) = notes.first() {
        let more = match notes.len() {
            1 => String::new(),
            n => format!("  (+{} earlier)", n - 1),
        };
        let who = format!(
            "✎ note by {} on {}: ",
            sanitize(&newest.steward),
            sanitize(prefix(&newest.decided_at, 10))
        );
        let room = usize::from(area.width).saturating_sub(width(&who) + width(&more));
        frame.render_widget(
            Line::from(vec![
                Span::styled(who, theme.dim()),
                Span::raw(truncate(&sanitize(newest.note.trim()), room).into_owned()),
                Span::styled(more, theme.dim()),
            ]),
            notes_area,
        );
    }
    if let Some((text, error)) = notice {
        let style = if error { theme.error() } else { theme.ok() };
        frame.render_widget(
            Line::styled(
                truncate(&sanitize(&text), usize::from(area.width)).into_owned(),
                style,
            ),
            notice_area,
        );
    }
    let row = &cl.detail.row;
    let excluded = if cl.excluded.is_empty() {
        String::new()
    } else {
        format!(" · {} excluded", cl.excluded.len())
    };
    let position = match cl.index {
        Some(i) if app.queue.total > 0 => format!("  {}/{}", i + 1, app.queue.total),
        _ => String::new(),
    };
    let title_line = Line::from(vec![
        Span::styled(format!("Cluster #{}", row.id), theme.title()),
        Span::raw(format!(
            " {} · {} records{excluded} · best {:.2} · weakest {:.2} · ",
            row.object_type,
            cl.detail.members.len(),
            row.score,
            row.weakest
        )),
        Span::styled(row.status.as_str(), theme.status(row.status.as_str())),
        Span::styled(position, theme.dim()),
        Span::raw("  "),
        Span::raw(sanitize(&row.label).into_owned()),
    ]);
    frame.render_widget(title_line, title);
    if let Some(scroll) = cl.stacked {
        let below = Rect {
            y: heads.y,
            height: area.bottom().saturating_sub(heads.y),
            ..area
        };
        draw_stacked(frame, below, cl, scroll, theme);
        return;
    }

    // Column geometry: marker, field name, survivor, why, then as many records as fit.
    let total_w = usize::from(area.width);
    // The detail line always has the whole reason; wide terminals show more of it in place.
    let why_w = if total_w >= 120 { 18 } else { 12 };
    // Field names come from the records too (a property no configuration lists).
    let field_w = cl
        .rows
        .iter()
        .map(|r| width(&sanitize(&r.name)))
        .max()
        .unwrap_or(5)
        .clamp(5, 14);
    let n = cl.detail.members.len().max(1);
    let fixed = 2 + field_w + 1 + why_w + 1;
    let rest = total_w.saturating_sub(fixed);
    // The survivor column is as wide as a record column.
    let col_w = (rest / (n + 1)).saturating_sub(1).clamp(12, 30);
    let fits = (rest / (col_w + 1)).saturating_sub(1).max(1);
    let first = (cl.record_cursor + 1).saturating_sub(fits);
    let last = (first + fits).min(n);
    let more_left = first > 0;
    let more_right = last < n;

    let mut h = vec![Span::styled(
        fit(
            &format!(
                "{}field{}",
                if more_left { "◀ " } else { "  " },
                if more_right {
                    format!(" +{}▶", n - last)
                } else {
                    String::new()
                }
            ),
            2 + field_w,
        ),
        theme.header(),
    )];
    h.push(Span::raw("│"));
    h.push(Span::styled(fit("✓ surviving", col_w), theme.header()));
    h.push(Span::raw("│"));
    h.push(Span::styled(fit("why", why_w), theme.header()));
    for (i, m) in cl.detail.members.iter().enumerate().take(last).skip(first) {
        let id = &m.record.id;
        let mark = if *id == cl.primary {
            "★"
        } else if cl.excluded.contains(id) {
            "✗"
        } else {
            " "
        };
        let text = format!("{mark}{} {}", sanitize(id), sanitize(&m.system));
        let mut style = theme.header();
        if i == cl.record_cursor {
            style = style.patch(theme.cursor());
        }
        h.push(Span::raw("│"));
        h.push(Span::styled(fit(&text, col_w), style));
    }
    frame.render_widget(Line::from(h), heads);

    let visible = cl.visible_rows();
    let height = usize::from(grid.height.max(1));
    let pos = visible
        .iter()
        .position(|&i| i == cl.field_cursor)
        .unwrap_or(0);
    let start = (pos / height) * height;
    let mut lines = Vec::with_capacity(height);
    for &ri in visible.iter().skip(start).take(height) {
        let fr = &cl.rows[ri];
        let on_row = ri == cl.field_cursor;
        let (marker, row_style) = match fr.agreement {
            FieldAgreement::Differs => ("≠ ", theme.differs()),
            FieldAgreement::Partial => ("+ ", theme.differs()),
            FieldAgreement::Same | FieldAgreement::Empty => ("  ", theme.dim()),
        };
        let mut spans = vec![
            Span::styled(marker, row_style),
            Span::styled(
                fit(&sanitize(&fr.name), field_w),
                if on_row {
                    row_style.patch(theme.cursor())
                } else {
                    row_style
                },
            ),
            Span::raw("│"),
        ];
        let (sv, why) = match &fr.survivor {
            Some(c) => (
                match &c.value {
                    Some(v) => sanitize(v).into_owned(),
                    None => "∅ (cleared)".to_string(),
                },
                // Reasons name record ids, which are as untrusted as values.
                sanitize(&c.reason).into_owned(),
            ),
            None if fr.locked.is_some() => ("·".to_string(), "read-only".to_string()),
            None => (String::new(), String::new()),
        };
        let sv_style = if fr.problem.is_some() {
            theme.error()
        } else if fr.picked {
            theme.picked()
        } else if fr.agreement.differs() {
            theme.survivor()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(fit(&sv, col_w), sv_style));
        spans.push(Span::raw("│"));
        let (why, why_style) = if fr.problem.is_some() {
            ("⚠ CRM refuses".to_string(), theme.error())
        } else if fr.typed {
            ("✎ typed".to_string(), theme.picked())
        } else if fr.picked {
            ("✓steward".to_string(), theme.picked())
        } else {
            (why, theme.dim())
        };
        spans.push(Span::styled(fit(&why, why_w), why_style));
        for ci in first..last {
            spans.push(Span::raw("│"));
            let cell = &fr.cells[ci];
            let is_cursor = on_row && ci == cl.record_cursor;
            let excluded = cl
                .detail
                .members
                .get(ci)
                .is_some_and(|m| cl.excluded.contains(&m.record.id));
            let base = if fr.agreement.differs() && !excluded {
                Style::new()
            } else {
                theme.dim()
            };
            let mut cell_spans = cell_spans(cell, col_w, base, theme);
            if is_cursor {
                for s in &mut cell_spans {
                    s.style = s.style.patch(theme.cursor());
                }
            }
            spans.extend(cell_spans);
        }
        lines.push(Line::from(spans));
    }
    if visible.len() < cl.rows.len() && lines.len() < height {
        lines.push(Line::styled(
            format!(
                "  {} agreeing fields folded (z shows them)",
                cl.rows.len() - visible.len()
            ),
            theme.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines), grid);

    draw_detail(frame, detail, cl, theme);
}

/// The field under the cursor across the records, stacked: what survives and why in full,
/// then one line per record (wrapped) with its whole value, who wrote it and when, and whether
/// it is the surviving value. The highlighted record's line is kept on screen; PgDn scrolls
/// past it through a long value.
fn draw_stacked(frame: &mut Frame, area: Rect, cl: &ClusterState, scroll: u16, theme: Theme) {
    let Some(fr) = cl.rows.get(cl.field_cursor) else {
        return;
    };
    let inner_w = usize::from(area.width.saturating_sub(2)).max(1);
    let mut lines: Vec<Line<'static>> = Vec::new();
    let survivor_value = fr.survivor.as_ref().and_then(|c| c.value.clone());
    match (&fr.survivor, &fr.locked, &fr.problem) {
        (None, Some(locked), _) => lines.extend(wrap(
            vec![Span::styled(
                format!("{} is {locked}: never written", sanitize(&fr.name)),
                theme.dim(),
            )],
            inner_w,
            2,
        )),
        (Some(c), _, problem) => {
            let from = match (&c.record_id, fr.typed) {
                (_, true) => "  typed by the steward".to_string(),
                (Some(r), _) => format!(
                    "  from {} ({})",
                    sanitize(r),
                    sanitize(c.system.as_deref().unwrap_or("no history"))
                ),
                (None, _) => String::new(),
            };
            let style = if problem.is_some() {
                theme.error()
            } else if fr.picked {
                theme.picked()
            } else {
                theme.survivor()
            };
            lines.extend(wrap(
                vec![
                    Span::styled("keeps ", theme.dim()),
                    Span::styled(
                        match &c.value {
                            Some(v) => sanitize(v).into_owned(),
                            None => "∅ (cleared)".to_string(),
                        },
                        style,
                    ),
                    Span::styled(from, theme.dim()),
                ],
                inner_w,
                2,
            ));
            lines.extend(wrap(
                vec![
                    Span::styled("why   ", theme.dim()),
                    Span::raw(sanitize(&c.reason).into_owned()),
                ],
                inner_w,
                6,
            ));
            if let Some(problem) = problem {
                lines.extend(wrap(
                    vec![Span::styled(
                        format!("⚠ the CRM would refuse this: {}", sanitize(problem)),
                        theme.error(),
                    )],
                    inner_w,
                    2,
                ));
            }
        }
        (None, None, _) => lines.push(Line::styled("keeps no value", theme.dim())),
    }
    lines.push(Line::raw(""));
    let mut starts = Vec::with_capacity(cl.detail.members.len());
    for (i, m) in cl.detail.members.iter().enumerate() {
        starts.push(lines.len());
        let id = &m.record.id;
        let value = fr.cells.get(i).and_then(|c| c.value.as_deref());
        let excluded = cl.excluded.contains(id);
        let credited = fr
            .survivor
            .as_ref()
            .is_some_and(|c| !fr.typed && c.record_id.as_deref() == Some(id.as_str()));
        let same = survivor_value.is_some() && value.map(str::to_string) == survivor_value;
        let mark = if excluded {
            "✗ "
        } else if credited {
            "✓ "
        } else if same {
            "= "
        } else {
            "  "
        };
        let on = i == cl.record_cursor;
        let mut id_style = theme.header();
        if on {
            id_style = id_style.patch(theme.cursor());
        }
        let mut spans = vec![
            Span::styled(if on { "▶ " } else { "  " }, theme.key()),
            Span::styled(mark, if excluded { theme.dim() } else { theme.ok() }),
            Span::styled(sanitize(id).into_owned(), id_style),
            Span::styled(if *id == cl.primary { "★ " } else { "  " }, theme.header()),
            Span::styled(
                match value {
                    Some(v) => sanitize(v).into_owned(),
                    None => "∅ (no value)".to_string(),
                },
                if excluded { theme.dim() } else { Style::new() },
            ),
        ];
        let origin = if excluded {
            "  · excluded from the merge".to_string()
        } else {
            match cl.draft.candidate(&fr.name, id) {
                Some(c) => format!(
                    "  · {} · {}{}",
                    sanitize(c.system.as_deref().unwrap_or("no history")),
                    c.written_at.map_or_else(
                        || "undated".to_string(),
                        |t| t.format("%Y-%m-%d").to_string()
                    ),
                    if c.from_history {
                        ""
                    } else {
                        " (record's update)"
                    }
                ),
                None => String::new(),
            }
        };
        spans.push(Span::styled(origin, theme.dim()));
        if credited {
            spans.push(Span::styled("  ← survives", theme.survivor()));
        }
        lines.extend(wrap(spans, inner_w, 6));
    }
    let total = lines.len();
    let h = usize::from(area.height.saturating_sub(2));
    let start = starts.get(cl.record_cursor).copied().unwrap_or(0);
    let end = starts.get(cl.record_cursor + 1).copied().unwrap_or(total);
    // As little scrolling as shows the highlighted record whole (or its start, when it is
    // longer than the box); PgDn goes on from there.
    let base = if end <= h {
        0
    } else if end - start <= h {
        end - h
    } else {
        start
    };
    let max = total.saturating_sub(h);
    let offset = (base + usize::from(scroll)).min(max);
    let mut block = Block::default().borders(Borders::ALL).title(Span::styled(
        format!(
            " {} in {} records · Space takes the highlighted value ",
            sanitize(&fr.name),
            cl.detail.members.len()
        ),
        theme.title(),
    ));
    let mut marks = Vec::new();
    if offset > 0 {
        marks.push("↑ more");
    }
    if offset < max {
        marks.push("↓ more (PgDn)");
    }
    if !marks.is_empty() {
        block = block.title_bottom(
            Line::styled(format!(" {} ", marks.join(" · ")), theme.key()).right_aligned(),
        );
    }
    frame.render_widget(Clear, area);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(lines).scroll((u16::try_from(offset).unwrap_or(u16::MAX), 0)),
        inner,
    );
}

/// Spans laid out in lines of `w` columns, cut between grapheme clusters, the lines after the
/// first indented by `indent`.
fn wrap(spans: Vec<Span<'static>>, w: usize, indent: usize) -> Vec<Line<'static>> {
    use unicode_segmentation::UnicodeSegmentation;
    let mut out = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in spans {
        let style = span.style;
        let mut piece = String::new();
        for g in span.content.graphemes(true) {
            let gw = width(g);
            if used + gw > w && used > indent {
                if !piece.is_empty() {
                    line.push(Span::styled(std::mem::take(&mut piece), style));
                }
                out.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(indent)));
                used = indent;
            }
            piece.push_str(g);
            used += gw;
        }
        if !piece.is_empty() {
            line.push(Span::styled(piece, style));
        }
    }
    if !line.is_empty() {
        out.push(Line::from(line));
    }
    out
}

/// Where the record's data came from: the ids merged into it with their snapshots, and each
/// field's origin (the text of `dupdesk lineage`, already sanitized there).
pub(super) fn draw_lineage(
    frame: &mut Frame,
    area: Rect,
    id: &str,
    text: &str,
    scroll: u16,
    theme: Theme,
) {
    let rect = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let title = format!(" Lineage of {} ", sanitize(id));
    let inner = overlay(frame, rect, &title, theme);
    let lines: Vec<Line> = text
        .lines()
        .map(|l| Line::raw(sanitize(l).into_owned()))
        .collect();
    let max = (lines.len() as u16).saturating_sub(inner.height);
    frame.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}

/// A cell's segments cut to `w` columns (with `…`) and padded, each run keeping its style.
fn cell_spans<'a>(cell: &'a Cell, w: usize, base: Style, theme: Theme) -> Vec<Span<'a>> {
    if cell.value.is_none() {
        return vec![Span::styled(fit("∅", w), theme.dim())];
    }
    let total: usize = cell.segments.iter().map(|s| width(&s.text)).sum();
    let mut spans = Vec::new();
    let mut used = 0;
    let cut = total > w;
    let budget = if cut { w.saturating_sub(1) } else { w };
    for seg in &cell.segments {
        if used >= budget {
            break;
        }
        let text = prefix(&seg.text, budget - used);
        used += width(text);
        let style = if seg.changed {
            base.patch(theme.changed())
        } else {
            base
        };
        spans.push(Span::styled(text, style));
    }
    if cut {
        spans.push(Span::styled("…", base));
        used += 1;
    }
    if used < w {
        spans.push(Span::styled(" ".repeat(w - used), base));
    }
    spans
}

/// The whole value under the cursor, and the surviving value with where it comes from.
fn draw_detail(frame: &mut Frame, area: Rect, cl: &ClusterState, theme: Theme) {
    let Some(fr) = cl.rows.get(cl.field_cursor) else {
        return;
    };
    let rec = cl.detail.members.get(cl.record_cursor);
    let mut lines = Vec::new();
    if let Some(rec) = rec {
        let value = fr
            .cells
            .get(cl.record_cursor)
            .and_then(|c| c.value.as_deref())
            .map(|v| sanitize(v).into_owned());
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", sanitize(&fr.name)), theme.header()),
            Span::styled(
                // Who wrote this value and when (the record's connection is not its source).
                match cl.draft.candidate(&fr.name, &rec.record.id) {
                    Some(c) => format!(
                        "of {} ({}, {}): ",
                        sanitize(&rec.record.id),
                        sanitize(c.system.as_deref().unwrap_or("no history")),
                        c.written_at
                            .map_or_else(|| "undated".into(), |t| t.format("%Y-%m-%d").to_string())
                    ),
                    None => format!("of {}: ", sanitize(&rec.record.id)),
                },
                theme.dim(),
            ),
            Span::raw(value.unwrap_or_else(|| "∅ (no value)".into())),
        ]));
    }
    let survivor = match (&fr.survivor, &fr.locked, &fr.problem) {
        (_, _, Some(problem)) => Line::styled(
            format!("⚠ the CRM would refuse this: {problem}; take another value (space)"),
            theme.error(),
        ),
        (None, Some(locked), _) => Line::styled(
            format!("{} is {locked}: never written", fr.name),
            theme.dim(),
        ),
        (Some(c), _, _) => Line::from(vec![
            Span::styled("keeps ", theme.dim()),
            Span::styled(
                sanitize(c.value.as_deref().unwrap_or("∅")).into_owned(),
                theme.survivor(),
            ),
            Span::styled(
                format!(
                    "  from {} ({}) · {}",
                    sanitize(c.record_id.as_deref().unwrap_or("the steward")),
                    sanitize(c.system.as_deref().unwrap_or("typed")),
                    sanitize(&c.reason)
                ),
                theme.dim(),
            ),
        ]),
        (None, None, None) => Line::styled("keeps no value", theme.dim()),
    };
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        Rect {
            height: area.height.saturating_sub(1),
            ..area
        },
    );
    frame.render_widget(
        survivor,
        Rect {
            y: area.y + area.height.saturating_sub(1),
            height: 1,
            ..area
        },
    );
}

/// What the steward must know about the cluster before deciding on it: why it came back to the
/// queue, or how far its merge job got. `true` when it is a problem.
fn notice(cl: &ClusterState) -> Option<(String, bool)> {
    let status = cl.detail.row.status;
    let job = cl.detail.job.as_ref();
    match status {
        ClusterStatus::Stale | ClusterStatus::NeedsAttention => {
            let reason = cl.detail.status_reason.as_deref()?;
            Some((format!("⚠ sent back before any merge: {reason}"), true))
        }
        ClusterStatus::Merged => {
            let job = job?;
            let kind = match cl.detail.row.object_type {
                crate::domain::model::ObjectType::Contacts => "contact",
                crate::domain::model::ObjectType::Companies => "company",
            };
            Some((
                format!(
                    "merged by job {}: these records are now {kind} {} · nothing left to decide",
                    job.id,
                    job.survivor_id.as_deref().unwrap_or("?")
                ),
                false,
            ))
        }
        ClusterStatus::Failed => {
            let job = job?;
            let error = job.last_error.as_deref().unwrap_or("no message");
            if cl.draft.finishing_job().is_some() {
                Some((
                    format!(
                        "⚠ the merges ran (survivor {}), the {} step failed: {error} · change the values, then approve to finish",
                        job.survivor_id.as_deref().unwrap_or("?"),
                        job.failed_step.map_or("update", |s| s.as_str())
                    ),
                    true,
                ))
            } else {
                Some((
                    format!(
                        "⚠ merge job {} failed: {error} · R in the merges view retries it",
                        job.id
                    ),
                    true,
                ))
            }
        }
        _ => None,
    }
}

/// The explanation overlay over the cluster screen, from its line `scroll`.
pub(super) fn draw_explain(
    frame: &mut Frame,
    area: Rect,
    cl: &ClusterState,
    scroll: u16,
    theme: Theme,
) {
    let rect = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let inner = overlay(frame, rect, " Why these records match ", theme);
    let w = usize::from(inner.width);
    let id_of = |rid: i64| {
        cl.detail
            .members
            .iter()
            .find(|m| m.rid == rid)
            .map(|m| sanitize(&m.record.id).into_owned())
            .unwrap_or_else(|| format!("row {rid}"))
    };
    let mut lines = vec![Line::from(vec![
        Span::styled("matcher ", theme.dim()),
        Span::raw(sanitize(&cl.detail.matcher).into_owned()),
        Span::styled(
            format!(
                " · best {:.2} · weakest {:.2}",
                cl.detail.row.score, cl.detail.row.weakest
            ),
            theme.dim(),
        ),
    ])];
    let agree: Vec<String> = cl
        .rows
        .iter()
        .filter(|r| r.agreement == FieldAgreement::Same)
        .map(|r| sanitize(&r.name).into_owned())
        .collect();
    let differ: Vec<String> = cl
        .rows
        .iter()
        .filter(|r| r.agreement.differs())
        .map(|r| sanitize(&r.name).into_owned())
        .collect();
    lines.push(Line::from(vec![
        Span::styled("agree:  ", theme.ok()),
        Span::raw(truncate(&agree.join(", "), w.saturating_sub(8)).into_owned()),
    ]));
    lines.push(Line::from(vec![
        Span::styled("differ: ", theme.differs()),
        Span::raw(truncate(&differ.join(", "), w.saturating_sub(8)).into_owned()),
    ]));
    if cl.detail.pairs.is_empty() {
        lines.push(Line::styled(
            "The matcher recorded no pair scores for this cluster.",
            theme.dim(),
        ));
    }
    for p in &cl.detail.pairs {
        lines.push(Line::raw(""));
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} ↔ {}", id_of(p.a_rid), id_of(p.b_rid)),
                theme.header(),
            ),
            Span::raw(format!("  score {:.2}", p.score)),
        ]));
        for text in explanation_lines(&p.explanation) {
            lines.push(Line::raw(format!(
                "  {}",
                truncate(&sanitize(&text), w.saturating_sub(2))
            )));
        }
    }
    // Scrolling stops with the last line at the bottom.
    let max = (lines.len() as u16).saturating_sub(inner.height);
    frame.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}

/// A matcher's explanation JSON as readable lines: one per field where it lists fields
/// (`{"fields": [{"property": "email", "agreement": "exact", "weight": 4.1, ...}]}`, or keyed by
/// field name), then its other figures (rule, weights, probability); anything else as text.
pub(crate) fn explanation_lines(v: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn scalar(v: &Value) -> String {
        match v {
            Value::Number(n) => n
                .as_f64()
                .map(|f| {
                    if f.fract() == 0.0 {
                        format!("{f:.0}")
                    } else {
                        format!("{f:.2}")
                    }
                })
                .unwrap_or_else(|| n.to_string()),
            Value::String(s) => s.clone(),
            Value::Null => "∅".into(),
            other => other.to_string(),
        }
    }
    fn entry(name: &str, v: &Value) -> String {
        let Value::Object(m) = v else {
            return format!("{name}: {}", scalar(v));
        };
        // The matcher's own shape: agreement level and weight, compactly.
        if let (Some(agreement), Some(weight)) = (
            m.get("agreement").and_then(Value::as_str),
            m.get("weight").and_then(Value::as_f64),
        ) {
            let mut line = format!("{name:<14} {agreement:<10} weight {weight:+.2}");
            if let Some(c) = m.get("comparator").and_then(Value::as_str) {
                line.push_str(&format!("  ({c})"));
            }
            if m.get("blocked").and_then(Value::as_bool) == Some(true) {
                line.push_str("  blocking key");
            }
            return line;
        }
        let parts: Vec<String> = m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "field" | "property"))
            .map(|(k, v)| format!("{k} {}", scalar(v)))
            .collect();
        format!("{name}: {}", parts.join(" · "))
    }
    fn name_of(item: &Value) -> String {
        item.get("property")
            .or_else(|| item.get("field"))
            .and_then(Value::as_str)
            .unwrap_or("·")
            .to_string()
    }
    match v {
        Value::Object(m) => {
            if let Some(fields) = m.get("fields") {
                let mut out = explanation_lines(fields);
                // The pair's ids are in the heading already.
                for (k, v) in m
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "fields" | "a" | "b"))
                {
                    out.push(entry(k, v));
                }
                return out;
            }
            m.iter().map(|(k, v)| entry(k, v)).collect()
        }
        Value::Array(items) => items
            .iter()
            .map(|item| entry(&name_of(item), item))
            .collect(),
        other => vec![scalar(other)],
    }
}

#[cfg(test)]
mod tests {
    use super::explanation_lines;

    #[test]
    fn explanations_read_in_the_matchers_shape_and_others() {
        let matcher = serde_json::json!({
            "a": "1", "b": "2", "rule": "email",
            "fields": [
                {"property": "email", "kind": "email", "comparator": "exact", "a": "x@y", "b": "x@y",
                 "level": 3, "agreement": "exact", "weight": 6.25, "frequency_adjusted": true, "blocked": true},
                {"property": "lastname", "agreement": "fuzzy", "weight": -1.5, "comparator": "jaro_winkler"}
            ],
            "prior_weight": -9.1, "match_weight": 4.2, "probability": 0.947
        });
        assert_eq!(
            explanation_lines(&matcher),
            [
                "email          exact      weight +6.25  (exact)  blocking key",
                "lastname       fuzzy      weight -1.50  (jaro_winkler)",
                "match_weight: 4.20",
                "prior_weight: -9.10",
                "probability: 0.95",
                "rule: email",
            ]
        );
        let keyed = serde_json::json!({"email": {"score": 1, "weight": 0.4}});
        assert_eq!(explanation_lines(&keyed), ["email: score 1 · weight 0.40"]);
        assert_eq!(explanation_lines(&serde_json::json!("plain")), ["plain"]);
    }
}
