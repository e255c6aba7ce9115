//! The HubSpot CRM v3 objects API wire format: the JSON bodies exactly as HubSpot sends and
//! accepts them. Shared by the HubSpot connector (client side) and the sandbox CRM (server
//! side), so that the two cannot drift apart. Plain serde types; no I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `SimplePublicObject` (and `SimplePublicObjectWithAssociations`, minus associations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimplePublicObject {
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_with_history: Option<BTreeMap<String, Vec<ValueWithTimestamp>>>,
    pub created_at: String,
    pub updated_at: String,
    pub archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
}

/// One entry of `propertiesWithHistory`, newest first in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueWithTimestamp {
    pub value: String,
    pub timestamp: String,
    pub source_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by_user_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextPage {
    pub after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextPage>,
}

/// `CollectionResponseSimplePublicObjectWithAssociationsForwardPaging`: the list endpoint.
/// No `paging` means the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionResponse {
    pub results: Vec<SimplePublicObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

/// The search endpoint's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    pub total: u64,
    pub results: Vec<SimplePublicObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdInput {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReadRequest {
    pub inputs: Vec<IdInput>,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub properties_with_history: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateInput {
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchUpdateInput {
    pub id: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchUpdateRequest {
    pub inputs: Vec<BatchUpdateInput>,
}

/// `BatchResponseSimplePublicObject` (200) and `...WithErrors` (207).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub status: String,
    pub results: Vec<SimplePublicObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_errors: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StandardError>,
    pub started_at: String,
    pub completed_at: String,
}

/// One entry of a batch response's `errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandardError {
    pub status: String,
    pub category: String,
    pub message: String,
    #[serde(default)]
    pub context: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
    /// Always present in HubSpot's answers (HubSpot's own clients require it), usually empty.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeRequest {
    pub primary_object_id: String,
    pub object_id_to_merge: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    pub property_name: String,
    /// `ASCENDING` or `DESCENDING`.
    pub direction: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorts: Vec<Sort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// HubSpot's error body. Rate-limit errors carry `errorType` and `policyName`; the others
/// carry `category`, `context` and `errors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub status: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<serde_json::Value>>,
}

impl SimplePublicObject {
    /// The model's view of this object. Property values stay as sent; history entries keep
    /// HubSpot's newest-first order. A history timestamp that does not parse is dropped, not
    /// guessed.
    pub fn into_record(self, object_type: crate::model::ObjectType) -> crate::model::Record {
        use crate::model::{PropertyVersion, Record, parse_ts};
        let history = self
            .properties_with_history
            .unwrap_or_default()
            .into_iter()
            .map(|(name, versions)| {
                let versions = versions
                    .into_iter()
                    .filter_map(|v| {
                        Some(PropertyVersion {
                            timestamp: parse_ts(&v.timestamp)?,
                            value: Some(v.value).filter(|s| !s.is_empty()),
                            source_type: v.source_type,
                            source_id: v.source_id,
                        })
                    })
                    .collect();
                (name, versions)
            })
            .collect();
        Record {
            object_type,
            id: self.id,
            properties: self.properties,
            history,
            created_at: parse_ts(&self.created_at),
            updated_at: parse_ts(&self.updated_at),
            archived: self.archived,
        }
    }
}
