//! Reads that ask for more properties than fit in a URL. HubSpot's GET endpoints take the
//! property names in the query, and HubSpot answers 414 to a URL of about 16,000 characters (a
//! portal with hundreds of custom properties reaches that). When a list page or a single read
//! would not fit in [`client::URL_BUDGET`], the connector asks for the ids alone with the GET
//! and reads the properties (and their history) with a batch read, whose names travel in the
//! POST body: one request more, and no 414.

use std::collections::{BTreeMap, HashMap};

use super::HubSpotConnector;
use super::client;
use crate::crm::{Connector, CrmError, Page, ReadOutcome};
use crate::domain::model::{ObjectType, Record};

impl HubSpotConnector {
    /// Whether a GET of `path` with these `properties` and `history` would exceed the URL
    /// budget.
    pub(super) fn too_long(
        &self,
        path: &[&str],
        query: &[(&'static str, String)],
        properties: &[String],
        history: &[String],
    ) -> bool {
        let mut full = query.to_vec();
        full.extend(properties.iter().map(|p| ("properties", p.clone())));
        full.extend(history.iter().map(|p| ("propertiesWithHistory", p.clone())));
        !self.http.fits(path, &full)
    }

    /// A list page whose property names do not fit in a URL: the page's ids from the list,
    /// then their properties from a batch read, in the list's order. A record merged or
    /// deleted between the two reads comes as the batch read finds it (its survivor), or not
    /// at all.
    pub(super) async fn list_page_wide(
        &self,
        object: ObjectType,
        query: Vec<(&'static str, String)>,
        properties: &[String],
        history: &[String],
    ) -> Result<Page, CrmError> {
        let listed = self.list("list", object, query).await?;
        let next = listed.paging.and_then(|p| p.next).map(|n| n.after);
        let ids: Vec<String> = listed.results.into_iter().map(|o| o.id).collect();
        let read = Connector::batch_read(self, object, &ids, properties, history).await?;
        Ok(Page {
            records: in_order(&ids, read.found),
            next,
        })
    }

    /// One record whose property names do not fit in a URL, by a batch read of its id.
    pub(super) async fn read_wide(
        &self,
        object: ObjectType,
        id: &str,
        properties: &[String],
    ) -> Result<ReadOutcome, CrmError> {
        let read = Connector::batch_read(self, object, &[id.to_string()], properties, &[]).await?;
        Ok(match read.found.into_iter().next() {
            None => ReadOutcome::Missing,
            Some(record) if record.id == id => ReadOutcome::Live(record),
            // A merged-away id is answered with the record it was merged into.
            Some(record) => ReadOutcome::MergedInto(record),
        })
    }
}

/// `found` in the order of `ids`; records under ids not asked for (survivors of a merge that
/// happened meanwhile) follow, each once.
fn in_order(ids: &[String], found: Vec<Record>) -> Vec<Record> {
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut placed: BTreeMap<(usize, String), Record> = BTreeMap::new();
    for record in found {
        let at = position
            .get(record.id.as_str())
            .copied()
            .unwrap_or(ids.len());
        placed.entry((at, record.id.clone())).or_insert(record);
    }
    placed.into_values().collect()
}

/// The URL budget, for tests that build property lists just over it.
pub const URL_BUDGET: usize = client::URL_BUDGET;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            object_type: ObjectType::Contacts,
            id: id.to_string(),
            properties: BTreeMap::new(),
            history: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            archived: false,
        }
    }

    #[test]
    fn batch_read_results_come_back_in_list_order() {
        let ids: Vec<String> = ["3", "1", "2"].iter().map(|s| s.to_string()).collect();
        let found = vec![
            record("2"),
            record("9"),
            record("3"),
            record("1"),
            record("9"),
        ];
        let order: Vec<String> = in_order(&ids, found).into_iter().map(|r| r.id).collect();
        assert_eq!(order, ["3", "1", "2", "9"]);
    }
}
