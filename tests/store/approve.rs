//! Bulk approval by rule: only pending clusters whose weakest link meets the score (and size)
//! are approved, each as an ordinary decision by `auto` with the rule in its note and the
//! precedence engine's choices, and the executor then merges exactly those.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use dupdesk::store::clusters::Action;
use std::sync::Arc;

use common::*;
use dupdesk::domain::precedence::Rules;
use dupdesk::ops::approve::{self, Rule};
use dupdesk::ops::executor::{self, ExecOptions};
use dupdesk::store::decisions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_by_rule_records_auto_decisions_that_apply_merges() {
    let (seed, planted) = planted_clusters(6);
    let Fixture {
        sandbox,
        crm,
        dir: _dir,
        store,
    } = fixture(seed).await;
    // Sizes are 3,2,2,3,2,2; weakest links vary.
    let weakest = [0.999, 0.999, 0.80, 0.999, 0.97, 0.999];
    let clusters = pending_clusters(&store, &planted, &weakest).await;
    let config = config();
    let rules = Rules::for_config(&config).unwrap();
    let rule = Rule {
        min_score: 0.98,
        max_size: Some(2),
    };

    let dry = {
        let (store, config, rules) = (store.clone(), config.clone(), rules.clone());
        tokio::task::spawn_blocking(move || approve::approve(&store, &config, &rules, rule, true))
            .await
            .unwrap()
            .unwrap()
    };
    let want = vec![clusters[1], clusters[5]];
    assert_eq!(dry.iter().map(|a| a.cluster_id).collect::<Vec<_>>(), want);
    assert!(dry.iter().all(|a| a.decision_id.is_none()));
    assert!(
        store.call(|c| decisions::all(c)).await.unwrap().is_empty(),
        "a dry run writes nothing"
    );

    let done = {
        let (store, config, rules) = (store.clone(), config.clone(), rules.clone());
        tokio::task::spawn_blocking(move || approve::approve(&store, &config, &rules, rule, false))
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(done.len(), 2);
    let log = store.call(|c| decisions::all(c)).await.unwrap();
    assert_eq!(log.len(), 2);
    for d in &log {
        assert_eq!(d.steward, "auto");
        assert_eq!(d.action, Action::Approve);
        assert!(
            d.note.contains("weakest link >= 0.98, size <= 2"),
            "{}",
            d.note
        );
        assert!(d.primary_id.is_some());
        let first = &d.field_choices["firstname"];
        assert!(first.value.is_some() && !first.reason.is_empty());
    }
    // Running it again approves nothing more: those clusters are no longer pending.
    let again = {
        let (store, config, rules) = (store.clone(), config.clone(), rules.clone());
        tokio::task::spawn_blocking(move || approve::approve(&store, &config, &rules, rule, false))
            .await
            .unwrap()
            .unwrap()
    };
    assert!(again.is_empty());

    let report = executor::apply(
        &store,
        crm,
        &config,
        ExecOptions::default(),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(report.merged, 2);
    let log = sandbox.merge_log().await.unwrap();
    let merged: Vec<&str> = log
        .iter()
        .map(|e| e.object_id_to_merge.as_str())
        .chain(log.iter().map(|e| e.primary_object_id.as_str()))
        .collect();
    for i in [1, 5] {
        for id in &planted[i].ids {
            assert!(merged.contains(&id.as_str()), "{id} of cluster {i} merged");
        }
    }
    assert_eq!(log.len(), 2);
    sandbox.shutdown().await;
}
