//! `dupdesk mapping resolve CONFLICT --target ID`: the steward settles a merge whose records
//! mapped to different ids in the other system. dupdesk never picks one of them itself (the
//! merge writes none); here the steward does, and the chosen id is then written into the
//! survivor's inverse-id property in the CRM (checked against the CRM's property definition
//! first) and becomes the survivor's one active mapping row, and the conflict is resolved.

use anyhow::{Result, anyhow, bail};

use super::Ctx;
use super::connect::connect;
use crate::crm::ReadOutcome;
use crate::domain::sanitize::for_terminal as t;
use crate::store::{mapping, now_ts};

pub async fn run(ctx: &Ctx, conflict_id: i64, target: &str) -> Result<()> {
    let store = super::open_existing(ctx)?;
    let c = store
        .call(move |c| mapping::conflict(c, conflict_id))
        .await?
        .ok_or_else(|| {
            anyhow!("there is no mapping conflict #{conflict_id} (see `dupdesk mapping conflicts`)")
        })?;
    if c.kind != mapping::ConflictKind::Merge || !c.is_open() {
        bail!(
            "mapping conflict #{conflict_id} is not an open merge conflict; `dupdesk mapping conflicts --all` lists them"
        );
    }
    if !c.target_ids.iter().any(|id| id == target) {
        bail!(
            "{} is not one of the ids the merged records mapped to ({})",
            t(target),
            t(&c.target_ids.join(", "))
        );
    }
    let object = c.object_type;
    let property = ctx.config.mapping.inverse_id_property.clone();
    let conn = connect(&ctx.config, &store).await?;
    let written = async {
        let live = match conn.crm.read(object, &c.survivor_id, &[]).await? {
            ReadOutcome::Live(r) => r.id,
            ReadOutcome::MergedInto(r) => bail!(
                "the survivor {} was merged into {} since; settle that record's mapping instead",
                t(&c.survivor_id),
                t(&r.id)
            ),
            ReadOutcome::Missing => bail!(
                "the survivor {} no longer exists in the CRM",
                t(&c.survivor_id)
            ),
        };
        let update = std::collections::BTreeMap::from([(property.clone(), target.to_string())]);
        match conn.crm.properties(object).await {
            Ok(defs) => {
                let catalog = crate::domain::model::PropertyCatalog::new(defs, None);
                if let Some(p) =
                    crate::domain::plan::check_update(object, &catalog, &update).first()
                {
                    bail!("the CRM would refuse it: {p}");
                }
            }
            Err(crate::crm::CrmError::Unsupported { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        conn.crm.update(object, &live, &update).await?;
        Ok(live)
    }
    .await;
    conn.close().await;
    let survivor = written?;
    let (target_owned, steward) = (target.to_string(), ctx.config.workspace.steward.clone());
    store
        .call(move |c| {
            mapping::settle_merge_conflict(c, conflict_id, &target_owned, &steward, &now_ts())
        })
        .await?;
    crate::outln!(
        "conflict #{conflict_id} settled: {} {} now has {property} = {} in the CRM and maps to {}:{}",
        object,
        t(&survivor),
        t(target),
        t(&c.target_system),
        t(target)
    );
    Ok(())
}
