//! Paging "modified since" through HubSpot's search endpoint by key, never by offset. Builds
//! search requests and the opaque cursor that leads from one page to the next; it sends
//! nothing.
//!
//! An offset pages a live index: a record edited while the listing runs moves to the end, the
//! records after it shift one place forward, and the one that shifted across a page boundary is
//! never delivered (singer-io/tap-hubspot#91). HubSpot also refuses offsets past 10,000. So
//! each page is asked for by where the last one ended: sorted by the last-modified property,
//! ascending (HubSpot takes one sort per search), with `GTE` the last-modified time of the
//! previous page's last record and `NOT_IN` the ids that page delivered at that instant, so
//! each record comes once (up to [`EXCEPT_MAX`] such ids; past that they come again, and the
//! caller skips what it holds already). An edited record only moves forward, to a later page.
//! A page that is a single instant from first to last record may be the head of a block of
//! thousands sharing one time (a mass update): that instant is then paged by `hs_object_id`
//! (`EQ` on the time, `GT` on the id, sorted by id), and the listing continues strictly after
//! it. Every page moves the position forward, so the listing ends; no record that stays put is
//! skipped.

use super::wire::{Filter, FilterGroup, SearchRequest, SearchResponse, SimplePublicObject, Sort};
use crate::crm::CrmError;
use crate::domain::model::{ObjectType, format_ts, parse_ts};

/// HubSpot's largest search offset plus page.
pub const SEARCH_RESULT_CAP: u32 = 10_000;
/// HubSpot's largest search page.
pub const SEARCH_PAGE_LIMIT: u32 = 200;
/// The most ids a page leaves out with `NOT_IN` (HubSpot documents no limit; kept modest).
pub const EXCEPT_MAX: usize = 100;

/// Where the next page of a modified-since listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    /// Records modified at or after (`strict`: after) `since`, by last-modified time, but for
    /// the ids in `except` (those the previous page delivered at `since`).
    Range {
        since: String,
        strict: bool,
        except: Vec<String>,
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
            except: Vec::new(),
        })
    }

    pub(super) fn encode(&self) -> String {
        match self {
            Cursor::Range {
                since,
                strict,
                except,
            } => format!(
                "{}|{since}|{}",
                if *strict { "gt" } else { "gte" },
                except.join(",")
            ),
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
            "gte" | "gt" if rest.chars().all(|c| c.is_ascii_digit() || c == ',') => {
                Ok(Cursor::Range {
                    since: ts,
                    strict: kind == "gt",
                    except: rest
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                })
            }
            "tie" if rest.chars().all(|c| c.is_ascii_digit()) => Ok(Cursor::Tie {
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
        let (filters, sort_by) = match self {
            Cursor::Range {
                since,
                strict,
                except,
            } => {
                let mut filters = vec![filter(
                    &modified,
                    if *strict { "GT" } else { "GTE" },
                    &epoch_millis(since),
                )];
                if !except.is_empty() {
                    filters.push(Filter {
                        property_name: "hs_object_id".to_string(),
                        operator: "NOT_IN".to_string(),
                        value: None,
                        high_value: None,
                        values: Some(except.clone()),
                    });
                }
                (filters, modified.clone())
            }
            Cursor::Tie { at, after_id } => {
                let mut filters = vec![filter(&modified, "EQ", &epoch_millis(at))];
                if let Some(id) = after_id {
                    filters.push(filter("hs_object_id", "GT", id));
                }
                (filters, "hs_object_id".to_string())
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
            after: None,
        }
    }

    /// The cursor after `response`, or `None` when the listing is complete.
    pub(super) fn next(&self, object: ObjectType, response: &SearchResponse) -> Option<Cursor> {
        // No next page: everything matching this query has been delivered.
        response.paging.as_ref().and_then(|p| p.next.as_ref())?;
        let last = response.results.last()?;
        match self {
            Cursor::Tie { at, .. } => Some(Cursor::Tie {
                at: at.clone(),
                after_id: Some(last.id.clone()),
            }),
            Cursor::Range { .. } => {
                let first = modified_at(object, response.results.first()?)?;
                let last = modified_at(object, last)?;
                if first == last {
                    // A whole page at one instant: page that instant by id.
                    return Some(Cursor::Tie {
                        at: last,
                        after_id: None,
                    });
                }
                let mut except: Vec<String> = response
                    .results
                    .iter()
                    .filter(|r| modified_at(object, r).as_deref() == Some(last.as_str()))
                    .map(|r| r.id.clone())
                    .filter(|id| id.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                if except.len() > EXCEPT_MAX {
                    except.clear();
                }
                Some(Cursor::Range {
                    since: last,
                    strict: false,
                    except,
                })
            }
        }
    }

    /// After a tie ran out, the listing goes on strictly after its instant.
    pub(super) fn after_tie(&self) -> Option<Cursor> {
        match self {
            Cursor::Tie { at, .. } => Some(Cursor::Range {
                since: at.clone(),
                strict: true,
                except: Vec::new(),
            }),
            Cursor::Range { .. } => None,
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
                except: Vec::new(),
            },
            Cursor::Range {
                since: "2026-03-01T10:00:00.000Z".into(),
                strict: false,
                except: vec!["4".into(), "17".into()],
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
        assert!(Cursor::decode("gte|yesterday|").is_err());
        assert!(Cursor::decode("gte|2026-03-01T10:00:00Z|4;0").is_err());
        assert!(Cursor::decode("tie|2026-03-01T10:00:00Z|1 OR 1").is_err());
        assert!(Cursor::start("yesterday").is_err());
    }

    #[test]
    fn pages_continue_from_the_last_record_never_by_offset() {
        let c = Cursor::start("2026-03-01T00:00:00.000Z").unwrap();
        let req = c.request(C, &["email".to_string()], 200);
        assert_eq!(req.after, None);
        assert_eq!(req.filter_groups[0].filters[0].operator, "GTE");
        assert_eq!(
            req.filter_groups[0].filters[0].value.as_deref(),
            Some("1772323200000")
        );
        assert_eq!(req.sorts.len(), 1);
        assert_eq!(req.sorts[0].property_name, "lastmodifieddate");
        assert!(req.properties.contains(&"lastmodifieddate".to_string()));
        let r = response(
            vec![
                record("1", "2026-03-01T01:00:00.000Z"),
                record("7", "2026-03-01T02:00:00.000Z"),
                record("2", "2026-03-01T02:00:00.000Z"),
            ],
            Some("3"),
        );
        let next = c.next(C, &r).unwrap();
        assert_eq!(
            next,
            Cursor::Range {
                since: "2026-03-01T02:00:00.000Z".into(),
                strict: false,
                except: vec!["7".into(), "2".into()],
            }
        );
        // The next page leaves out what this one delivered at its last instant.
        let req = next.request(C, &[], 200);
        assert_eq!(req.after, None);
        let not_in = &req.filter_groups[0].filters[1];
        assert_eq!(not_in.operator, "NOT_IN");
        assert_eq!(
            not_in.values.as_deref(),
            Some(&["7".to_string(), "2".to_string()][..])
        );
        // The server's last page ends the listing.
        assert_eq!(c.next(C, &response(r.results.clone(), None)), None);
        assert_eq!(c.next(C, &response(vec![], None)), None);
    }

    #[test]
    fn a_page_at_one_instant_is_paged_by_id_then_continues_after_it() {
        let at = "2026-03-01T00:00:00.000Z";
        let c = Cursor::start(at).unwrap();
        let r = response(vec![record("3", at), record("9", at)], Some("2"));
        let tie = c.next(C, &r).unwrap();
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
            .next(C, &response(vec![record("5", at)], Some("1")))
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
        assert_eq!(more.next(C, &response(vec![record("6", at)], None)), None);
        assert_eq!(
            more.after_tie(),
            Some(Cursor::Range {
                since: at.into(),
                strict: true,
                except: Vec::new(),
            })
        );
    }
}
