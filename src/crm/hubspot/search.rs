//! Paging "modified since" through HubSpot's search endpoint, past its cap of 10,000 results
//! per query. Builds search requests and the opaque cursor that leads from one page to the
//! next; it sends nothing.
//!
//! HubSpot refuses a search page whose offset reaches 10,000, so offsets alone cannot page a
//! large change set. Pages are sorted by the last-modified property, ascending; when the next
//! offset would pass the cap, the query is restarted at a new watermark: the last-modified time
//! of the last record delivered (GTE, offset 0). Records that share that exact millisecond are
//! delivered again at the seam: paging is at-least-once, never lossy. If a whole capped query
//! shares a single timestamp (a bulk import), the watermark cannot move; those records are then
//! paged by `hs_object_id` (EQ on the timestamp, GT on the id, which needs no offset), and the
//! query continues strictly after the timestamp.

use super::wire::{Filter, FilterGroup, SearchRequest, SearchResponse, SimplePublicObject, Sort};
use crate::crm::CrmError;
use crate::model::{ObjectType, format_ts, parse_ts};

/// HubSpot's largest search offset plus page.
pub const SEARCH_RESULT_CAP: u32 = 10_000;
/// HubSpot's largest search page.
pub const SEARCH_PAGE_LIMIT: u32 = 200;

/// Where the next page of a modified-since listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    /// Records modified at or after (`strict`: after) `since`, skipping the first `offset`.
    Range {
        since: String,
        strict: bool,
        offset: u32,
    },
    /// Records modified exactly at `at`, with an id above `after_id`, in id order.
    Tie {
        at: String,
        after_id: Option<String>,
    },
}

impl Cursor {
    pub(super) fn start(since: &str) -> Result<Cursor, CrmError> {
        Ok(Cursor::Range {
            since: normalize(since)?,
            strict: false,
            offset: 0,
        })
    }

    pub(super) fn encode(&self) -> String {
        match self {
            Cursor::Range {
                since,
                strict,
                offset,
            } => format!("{}|{since}|{offset}", if *strict { "gt" } else { "gte" }),
            Cursor::Tie { at, after_id } => {
                format!("tie|{at}|{}", after_id.as_deref().unwrap_or(""))
            }
        }
    }

    pub(super) fn decode(text: &str) -> Result<Cursor, CrmError> {
        let bad = || CrmError::Validation {
            message: format!("not a modified-since paging cursor: {text:?}"),
            correlation_id: None,
        };
        let mut parts = text.splitn(3, '|');
        let (Some(kind), Some(ts), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let ts = normalize(ts).map_err(|_| bad())?;
        match kind {
            "gte" | "gt" => Ok(Cursor::Range {
                since: ts,
                strict: kind == "gt",
                offset: rest.parse().map_err(|_| bad())?,
            }),
            "tie" => Ok(Cursor::Tie {
                at: ts,
                after_id: Some(rest.to_string()).filter(|s| !s.is_empty()),
            }),
            _ => Err(bad()),
        }
    }

    /// The search request for this page.
    pub(super) fn request(
        &self,
        object: ObjectType,
        properties: &[String],
        limit: u32,
    ) -> SearchRequest {
        let modified = object.last_modified_property().to_string();
        let filter = |property_name: &str, operator: &str, value: &str| Filter {
            property_name: property_name.to_string(),
            operator: operator.to_string(),
            value: Some(value.to_string()),
            high_value: None,
            values: None,
        };
        let (filters, sort_by, after) = match self {
            Cursor::Range {
                since,
                strict,
                offset,
            } => (
                vec![filter(
                    &modified,
                    if *strict { "GT" } else { "GTE" },
                    &epoch_millis(since),
                )],
                modified.clone(),
                (*offset > 0).then(|| offset.to_string()),
            ),
            Cursor::Tie { at, after_id } => {
                let mut filters = vec![filter(&modified, "EQ", &epoch_millis(at))];
                if let Some(id) = after_id {
                    filters.push(filter("hs_object_id", "GT", id));
                }
                (filters, "hs_object_id".to_string(), None)
            }
        };
        let mut properties = properties.to_vec();
        if !properties.contains(&modified) {
            properties.push(modified);
        }
        SearchRequest {
            filter_groups: vec![FilterGroup { filters }],
            sorts: vec![Sort {
                property_name: sort_by,
                direction: "ASCENDING".to_string(),
            }],
            query: None,
            properties,
            limit: Some(limit),
            after,
        }
    }

    /// The cursor after `response`, or `None` when the listing is complete.
    pub(super) fn next(
        &self,
        object: ObjectType,
        response: &SearchResponse,
        limit: u32,
        cap: u32,
    ) -> Option<Cursor> {
        let server_next = response.paging.as_ref().and_then(|p| p.next.as_ref());
        match self {
            Cursor::Tie { at, .. } => Some(match (server_next, response.results.last()) {
                (Some(_), Some(last)) => Cursor::Tie {
                    at: at.clone(),
                    after_id: Some(last.id.clone()),
                },
                _ => Cursor::Range {
                    since: at.clone(),
                    strict: true,
                    offset: 0,
                },
            }),
            Cursor::Range {
                since,
                strict,
                offset,
            } => {
                let delivered = u64::from(*offset) + response.results.len() as u64;
                // At the cap HubSpot may stop offering a next page although `total` says there
                // is more; either sign means more to read.
                if server_next.is_none() && delivered >= response.total {
                    return None;
                }
                let next_offset = server_next
                    .and_then(|n| n.after.parse::<u32>().ok())
                    .unwrap_or_else(|| u32::try_from(delivered).unwrap_or(u32::MAX));
                if server_next.is_some() && next_offset.saturating_add(limit) <= cap {
                    return Some(Cursor::Range {
                        since: since.clone(),
                        strict: *strict,
                        offset: next_offset,
                    });
                }
                let last = modified_at(object, response.results.last()?)?;
                if last == *since {
                    // A whole capped query at one instant: page that instant by id.
                    Some(Cursor::Tie {
                        at: last,
                        after_id: None,
                    })
                } else {
                    Some(Cursor::Range {
                        since: last,
                        strict: false,
                        offset: 0,
                    })
                }
            }
        }
    }
}

/// A record's last-modified time in the normalized form, from the property, else `updatedAt`.
fn modified_at(object: ObjectType, record: &SimplePublicObject) -> Option<String> {
    record
        .properties
        .get(object.last_modified_property())
        .and_then(|v| v.as_deref())
        .and_then(parse_ts)
        .or_else(|| parse_ts(&record.updated_at))
        .map(|t| format_ts(&t))
}

/// HubSpot documents its API as taking times as Unix milliseconds; filters get that form.
fn epoch_millis(ts: &str) -> String {
    parse_ts(ts)
        .map(|t| t.timestamp_millis().to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// RFC 3339 in HubSpot's own form (milliseconds, `Z`), so equal instants compare equal.
fn normalize(ts: &str) -> Result<String, CrmError> {
    parse_ts(ts)
        .map(|t| format_ts(&t))
        .ok_or_else(|| CrmError::Validation {
            message: format!("not an RFC 3339 timestamp: {ts:?}"),
            correlation_id: None,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::wire::{NextPage, Paging};
    use super::*;

    fn record(id: &str, modified: &str) -> SimplePublicObject {
        SimplePublicObject {
            id: id.to_string(),
            properties: BTreeMap::from([(
                "lastmodifieddate".to_string(),
                Some(modified.to_string()),
            )]),
            properties_with_history: None,
            created_at: modified.to_string(),
            updated_at: modified.to_string(),
            archived: false,
            archived_at: None,
        }
    }

    fn response(records: Vec<SimplePublicObject>, next: Option<&str>) -> SearchResponse {
        SearchResponse {
            total: records.len() as u64,
            results: records,
            paging: next.map(|after| Paging {
                next: Some(NextPage {
                    after: after.to_string(),
                    link: None,
                }),
            }),
        }
    }

    const C: ObjectType = ObjectType::Contacts;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for c in [
            Cursor::start("2026-03-01T10:00:00Z").unwrap(),
            Cursor::Range {
                since: "2026-03-01T10:00:00.000Z".into(),
                strict: true,
                offset: 400,
            },
            Cursor::Tie {
                at: "2026-03-01T10:00:00.000Z".into(),
                after_id: Some("17".into()),
            },
            Cursor::Tie {
                at: "2026-03-01T10:00:00.000Z".into(),
                after_id: None,
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        assert!(Cursor::decode("200").is_err());
        assert!(Cursor::decode("gte|yesterday|0").is_err());
        assert!(Cursor::start("yesterday").is_err());
    }

    #[test]
    fn offsets_advance_below_the_cap() {
        let c = Cursor::start("2026-03-01T00:00:00.000Z").unwrap();
        let r = response(vec![record("1", "2026-03-01T01:00:00.000Z")], Some("200"));
        let next = c.next(C, &r, 200, SEARCH_RESULT_CAP).unwrap();
        assert_eq!(
            next,
            Cursor::Range {
                since: "2026-03-01T00:00:00.000Z".into(),
                strict: false,
                offset: 200
            }
        );
        let req = next.request(C, &["email".to_string()], 200);
        assert_eq!(req.after.as_deref(), Some("200"));
        assert_eq!(req.filter_groups[0].filters[0].operator, "GTE");
        assert_eq!(
            req.filter_groups[0].filters[0].value.as_deref(),
            Some("1772323200000")
        );
        assert_eq!(req.sorts[0].property_name, "lastmodifieddate");
        assert!(req.properties.contains(&"lastmodifieddate".to_string()));
        assert_eq!(
            c.next(C, &response(vec![], None), 200, SEARCH_RESULT_CAP),
            None
        );
    }

    #[test]
    fn at_the_cap_the_watermark_moves_to_the_last_record() {
        let c = Cursor::Range {
            since: "2026-03-01T00:00:00.000Z".into(),
            strict: false,
            offset: 9_800,
        };
        let r = response(
            vec![
                record("1", "2026-03-02T00:00:00.000Z"),
                record("2", "2026-03-02T05:00:00.000Z"),
            ],
            Some("10000"),
        );
        assert_eq!(
            c.next(C, &r, 200, SEARCH_RESULT_CAP),
            Some(Cursor::Range {
                since: "2026-03-02T05:00:00.000Z".into(),
                strict: false,
                offset: 0
            })
        );
        // The same when the server stops offering pages at the cap but reports more.
        let mut r = r;
        r.paging = None;
        r.total = 12_000;
        assert_eq!(
            c.next(C, &r, 200, SEARCH_RESULT_CAP),
            Some(Cursor::Range {
                since: "2026-03-02T05:00:00.000Z".into(),
                strict: false,
                offset: 0
            })
        );
    }

    #[test]
    fn a_capped_query_at_one_instant_is_paged_by_id_then_continues_after_it() {
        let at = "2026-03-01T00:00:00.000Z";
        let c = Cursor::Range {
            since: at.into(),
            strict: false,
            offset: 9_800,
        };
        let r = response(vec![record("9", at)], Some("10000"));
        let tie = c.next(C, &r, 200, SEARCH_RESULT_CAP).unwrap();
        assert_eq!(
            tie,
            Cursor::Tie {
                at: at.into(),
                after_id: None
            }
        );
        let req = tie.request(C, &[], 200);
        assert_eq!(req.sorts[0].property_name, "hs_object_id");
        assert_eq!(req.filter_groups[0].filters[0].operator, "EQ");
        let more = tie
            .next(
                C,
                &response(vec![record("5", at)], Some("200")),
                200,
                10_000,
            )
            .unwrap();
        assert_eq!(
            more,
            Cursor::Tie {
                at: at.into(),
                after_id: Some("5".into())
            }
        );
        let req = more.request(C, &[], 200);
        assert_eq!(req.filter_groups[0].filters[1].operator, "GT");
        assert_eq!(req.filter_groups[0].filters[1].value.as_deref(), Some("5"));
        assert_eq!(
            more.next(C, &response(vec![record("6", at)], None), 200, 10_000),
            Some(Cursor::Range {
                since: at.into(),
                strict: true,
                offset: 0
            })
        );
    }
}
