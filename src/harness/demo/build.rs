//! Assembling one record: values written by a source system at a time, kept as per-property
//! history (newest first, as HubSpot reports it); the current value of each property is its
//! newest version and the record's update time is its newest change.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::domain::model::{ObjectType, PropertyVersion, Record, format_ts};

/// The system that wrote a value, as HubSpot's history tells it (see `[sources]` in the default
/// configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A user in the CRM.
    Crm,
    /// The ERP integration.
    Erp,
    /// A marketing form.
    Form,
    /// The marketing automation integration.
    MarketingSync,
}

impl Source {
    fn history_fields(self) -> (&'static str, Option<&'static str>) {
        match self {
            Source::Crm => ("CRM_UI", None),
            Source::Erp => ("INTEGRATION", Some("erp-sync")),
            Source::Form => ("FORM", None),
            Source::MarketingSync => ("INTEGRATION", Some("marketing-sync")),
        }
    }
}

/// Records are created between these times (as seconds since the epoch: 2024-01-02 08:00 and
/// 2026-06-30 18:00 UTC) and edited until `EDITS_END` (2026-10-30 18:00 UTC).
const CREATED_START: i64 = 1_704_182_400;
const CREATED_END: i64 = 1_782_842_400;
const EDITS_END: i64 = 1_793_383_200;
/// Late edits (a new job title, a moved office) land after 2026-06-01.
pub const LATE_EDITS_START: i64 = 1_780_272_000;

pub fn ts(secs: i64, millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(secs * 1000 + millis).unwrap_or_default()
}

/// The creation time of the record at `position` of `n`: positions are creation order.
pub fn created_at(position: u32, n: usize, rng: &mut impl Rng) -> DateTime<Utc> {
    let span_ms = (CREATED_END - CREATED_START) as f64 * 1000.0;
    let slot = (position as f64 + rng.random::<f64>()) / n.max(1) as f64;
    ts(CREATED_START, (span_ms * slot) as i64)
}

/// A time after `after` and before the end of edits, usually within `within_days`.
pub fn later(after: DateTime<Utc>, within_days: i64, rng: &mut impl Rng) -> DateTime<Utc> {
    let end = ts(EDITS_END, 0);
    if after >= end {
        return after + Duration::seconds(1);
    }
    let span = (end - after)
        .num_milliseconds()
        .min(within_days * 86_400_000);
    after + Duration::milliseconds(rng.random_range(60_000..span.max(60_001)))
}

/// A time in the late-edit window, and after `after`.
pub fn late(after: DateTime<Utc>, rng: &mut impl Rng) -> DateTime<Utc> {
    let start = ts(LATE_EDITS_START, 0).max(after);
    later(start, 150, rng)
}

pub struct Builder {
    object: ObjectType,
    created: DateTime<Utc>,
    history: BTreeMap<String, Vec<PropertyVersion>>,
}

impl Builder {
    pub fn new(object: ObjectType, created: DateTime<Utc>) -> Builder {
        Builder {
            object,
            created,
            history: BTreeMap::new(),
        }
    }

    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    /// `source` wrote `value` into `property` at `at`. Versions may be given in any order.
    pub fn set(&mut self, property: &str, value: String, at: DateTime<Utc>, source: Source) {
        let (source_type, source_id) = source.history_fields();
        let version = PropertyVersion {
            value: Some(value),
            timestamp: at,
            source_type: source_type.to_string(),
            source_id: source_id.map(str::to_string),
        };
        match self.history.get_mut(property) {
            Some(versions) => versions.push(version),
            None => {
                self.history.insert(property.to_string(), vec![version]);
            }
        }
    }

    /// The newest value written so far, if any.
    pub fn current(&self, property: &str) -> Option<&str> {
        self.history
            .get(property)
            .and_then(|v| v.iter().max_by_key(|p| p.timestamp))
            .and_then(|p| p.value.as_deref())
    }

    /// Seal the record. System properties (id, create and modify dates) carry no history:
    /// HubSpot computes them, and no source system owns them.
    pub fn finish(mut self, id: String) -> Record {
        let mut properties = BTreeMap::new();
        let mut updated = self.created;
        for (name, versions) in &mut self.history {
            versions.sort_by_key(|v| std::cmp::Reverse(v.timestamp));
            if let Some(newest) = versions.first() {
                updated = updated.max(newest.timestamp);
                properties.insert(name.clone(), newest.value.clone());
            }
        }
        properties.insert("createdate".into(), Some(format_ts(&self.created)));
        properties.insert(
            self.object.last_modified_property().into(),
            Some(format_ts(&updated)),
        );
        properties.insert("hs_object_id".into(), Some(id.clone()));
        Record {
            object_type: self.object,
            id,
            properties,
            history: self.history,
            created_at: Some(self.created),
            updated_at: Some(updated),
            archived: false,
        }
    }
}
