//! `dupdesk amend JOB [--set F=V] [--clear F] [--take F=RECORD] [--reset F]`: new surviving
//! values for a merge job whose merges ran and whose field update failed (the CRM refused a
//! value, say). The job's cluster is opened as a review draft, the picks are made through it
//! (so the same rules hold as in the review: no read-only field, no excluded record, values
//! the CRM would refuse are refused here), and the result is written as an `amend` decision.
//! The next `apply` resumes the job at its field update; no merge is sent again.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use super::Ctx;
use crate::domain::precedence::Rules;
use crate::domain::sanitize::for_terminal;
use crate::ops::review::{ReviewContext, ReviewDraft};
use crate::store::{decisions, journal, properties, queue};

pub struct AmendArgs {
    pub job: i64,
    pub set: Vec<String>,
    pub clear: Vec<String>,
    pub take: Vec<String>,
    pub reset: Vec<String>,
}

fn pair<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str)> {
    text.split_once('=')
        .map(|(f, v)| (f.trim(), v))
        .filter(|(f, _)| !f.is_empty())
        .ok_or_else(|| anyhow!("{flag} {text:?}: expected FIELD=VALUE"))
}

pub fn run(ctx: &Ctx, args: AmendArgs) -> Result<()> {
    let store = super::open_existing(ctx)?;
    let job = args.job;
    let (detail, catalog) = store.call_blocking(move |c| {
        let cluster = journal::get_job(c, job)
            .map_err(|_| {
                anyhow!(
                    "there is no merge job {job} (the merges view and `dupdesk apply` name them)"
                )
            })?
            .cluster_id;
        let detail = queue::cluster(c, cluster)?
            .with_context(|| format!("the cluster of merge job {job} is gone"))?;
        let catalog = properties::load(c, detail.row.object_type)?;
        Ok((detail, catalog))
    })?;
    let object = detail.row.object_type;
    let draft_ctx = Arc::new(ReviewContext::for_config(
        &ctx.config,
        Arc::new(Rules::for_config(&ctx.config)?),
        object,
        catalog,
    ));
    let mut draft = ReviewDraft::new(draft_ctx, &detail);
    match draft.finishing_job() {
        Some(j) if j == job => {}
        _ => {
            let state = detail
                .job
                .as_ref()
                .filter(|j| j.id == job)
                .map(|j| j.status.to_string())
                .unwrap_or_else(|| "not the newest job of its cluster".into());
            bail!(
                "merge job {job} cannot be amended: only a failed job whose merges all ran can (it is {state}); `dupdesk apply --retry-failed` retries a failed one"
            );
        }
    }
    for f in &args.reset {
        draft.reset(f);
    }
    for text in &args.set {
        let (field, value) = pair("--set", text)?;
        draft.type_value(field, value)?;
    }
    for field in &args.clear {
        draft.clear(field)?;
    }
    for text in &args.take {
        let (field, record) = pair("--take", text)?;
        draft.take(field, record)?;
    }
    let new = draft.approve(
        &ctx.config.workspace.steward,
        "amended from the command line",
    )?;
    let update = crate::domain::plan::update_from_choices(&new.field_choices);
    let stored = store.call_blocking(move |c| decisions::record(c, &new))?;
    crate::outln!(
        "amend {} recorded for merge job {job} (cluster {}); the field update will write:",
        stored.id,
        stored.cluster_id
    );
    for (field, value) in &update {
        let shown = if value.is_empty() {
            "(cleared)".to_string()
        } else {
            for_terminal(value).into_owned()
        };
        crate::outln!("  {} = {shown}", for_terminal(field));
    }
    crate::outln!("run `dupdesk apply` to finish the job (its merges are not sent again)");
    Ok(())
}
