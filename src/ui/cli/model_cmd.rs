//! `dupdesk model`: the model the last `match` fitted, read as the workspace stores it. Per
//! field and comparison level its `m`, `u` and weight (log2 m/u) with a horizontal bar, so a
//! reader sees at a glance which levels speak for a match (bars right of the axis) and which
//! against (left); then per blocking rule its iterations and whether its estimation converged.
//! The bars are coloured by sign only when standard output is a terminal and `NO_COLOR` is
//! unset; the sign is also in the number and the side of the axis, so nothing depends on it.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use serde::Serialize;

use super::{Ctx, open_existing};
use crate::domain::matcher::MatchConfig;
use crate::domain::matcher::fitted::{FittedField, FittedModel};
use crate::domain::model::ObjectType;
use crate::domain::sanitize::for_terminal;
use crate::ops::matching::stored_model_json;

/// Half the bar's width, in cells: the largest weight of the model fills it.
const HALF: usize = 20;

#[derive(Serialize)]
struct Shown {
    object: String,
    /// Whether the model was fitted for the schema configured now (else the next match refits).
    current: Option<bool>,
    #[serde(flatten)]
    model: FittedModel,
}

pub fn run(ctx: &Ctx, object: Option<ObjectType>, json: bool) -> Result<()> {
    let store = open_existing(ctx)?;
    let objects: Vec<ObjectType> = object.map_or(ObjectType::ALL.to_vec(), |o| vec![o]);
    let mut shown = Vec::new();
    for o in objects {
        let stored = store.call_blocking(move |c| stored_model_json(c, o))?;
        let Some(stored) = stored else {
            if object.is_some() {
                bail!("no fitted model for {o} in this workspace; `dupdesk match` fits one");
            }
            continue;
        };
        let model = FittedModel::from_json(&stored)
            .map_err(|e| anyhow::anyhow!("the stored model of {o} cannot be read: {e}"))?;
        let current = MatchConfig::new(&ctx.config.matcher, o)
            .ok()
            .map(|cfg| cfg.schema_signature() == model.signature);
        shown.push(Shown {
            object: o.to_string(),
            current,
            model,
        });
    }
    if shown.is_empty() {
        bail!("no fitted model in this workspace; `dupdesk match` fits one");
    }
    if json {
        crate::outln!("{}", crate::domain::sanitize::json_pretty(&shown)?);
        return Ok(());
    }
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    for (i, s) in shown.iter().enumerate() {
        if i > 0 {
            crate::outln!();
        }
        print_model(s, colour);
    }
    Ok(())
}

fn print_model(s: &Shown, colour: bool) {
    let m = &s.model;
    let prior = m.prior.map_or(String::new(), |p| {
        format!(", prior {p:.3e} per random pair")
    });
    let labels = if m.labelled_pairs > 0 {
        format!(", {} steward-approved pairs", m.labelled_pairs)
    } else {
        String::new()
    };
    crate::outln!("{}: {} fields{prior}{labels}", s.object, m.fields.len());
    if s.current == Some(false) {
        crate::outln!(
            "  fitted for another schema than the one configured now; the next `dupdesk match` refits"
        );
    }
    let widest = m
        .fields
        .iter()
        .flat_map(|f| &f.levels)
        .map(|l| l.weight.abs())
        .filter(|w| w.is_finite())
        .fold(1.0_f64, f64::max);
    let name_width = m
        .fields
        .iter()
        .flat_map(|f| &f.levels)
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    crate::outln!(
        "    {:<name_width$}  {:>8}  {:>8}  {:>7}  {:>HALF$}│{}",
        "level",
        "m",
        "u",
        "bits",
        "against a match ",
        format!(" for a match (a full bar: {widest:.1} bits)")
    );
    for f in &m.fields {
        print_field(f, widest, name_width, colour);
    }
    crate::outln!("  estimation per blocking rule:");
    if m.rules.is_empty() {
        crate::outln!("    (none stored)");
    }
    for r in &m.rules {
        let state = match r.converged {
            Some(true) => "converged".to_string(),
            Some(false) => "NOT converged (stopped at the iteration cap)".to_string(),
            None => "convergence not recorded".to_string(),
        };
        let iterations = r
            .iterations
            .map_or("? iterations".to_string(), |i| format!("{i} iterations"));
        let lambda = r
            .lambda
            .map_or(String::new(), |l| format!(", match share {l:.3}"));
        let sampled = r
            .sampled_pairs
            .map_or(String::new(), |p| format!(", {p} pairs sampled"));
        crate::outln!(
            "    {:<40} {iterations}, {state}{lambda}{sampled}",
            for_terminal(&r.rule)
        );
    }
}

fn print_field(f: &FittedField, widest: f64, name_width: usize, colour: bool) {
    crate::outln!(
        "  {} ({})",
        for_terminal(&f.property),
        for_terminal(&f.kind)
    );
    for l in &f.levels {
        let cells = if l.weight.is_finite() {
            ((l.weight.abs() / widest) * HALF as f64).round() as usize
        } else {
            HALF
        }
        .min(HALF);
        let bar = "█".repeat(cells);
        let (left, right) = if l.weight < 0.0 {
            (format!("{bar:>HALF$}"), String::new())
        } else {
            (" ".repeat(HALF), bar)
        };
        let (left, right) = if colour {
            // Red against a match, green for it.
            (
                format!("\x1b[31m{left}\x1b[0m"),
                format!("\x1b[32m{right}\x1b[0m"),
            )
        } else {
            (left, right)
        };
        crate::outln!(
            "    {:<name_width$}  {:>8}  {:>8}  {:>+7.2}  {left}│{right}",
            for_terminal(&l.name),
            short(l.m),
            short(l.u),
            l.weight
        );
    }
}

/// A probability in eight characters: 0.9123, 3.1e-05.
fn short(p: f64) -> String {
    if p >= 0.001 || p == 0.0 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}
