//! The HubSpot CRM v3 objects and properties API wire format: the JSON bodies exactly as
//! HubSpot sends and accepts them. Shared by the HubSpot connector (client side) and the sandbox CRM (server
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

/// `Property` of the properties API (`GET /crm/v3/properties/{objectType}`): HubSpot's own
/// definition of one property. The official clients require `name`, `label`, `type`,
/// `fieldType`, `description`, `groupName` and `options` in every answer, so the sandbox always
/// sends them; everything else is optional on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `number`, `date`, `datetime`, `enumeration`, `bool`, `phone_number`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `text`, `textarea`, `select`, `radio`, `checkbox`, `booleancheckbox`, `date`, ...
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    #[serde(default)]
    pub calculated: bool,
    /// The options live elsewhere (owners, teams): the `options` list is not the whole truth.
    #[serde(default)]
    pub external_options: bool,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot_defined: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_metadata: Option<ModificationMetadata>,
    #[serde(default)]
    pub form_field: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// One option of an enumeration property (`Option` in HubSpot's API description).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    #[serde(default)]
    pub hidden: bool,
}

/// `PropertyModificationMetadata`: what may change. `readOnlyValue` is what matters to a
/// writer: the CRM refuses any value for such a property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    #[serde(default)]
    pub archivable: bool,
    #[serde(default)]
    pub read_only_definition: bool,
    #[serde(default)]
    pub read_only_value: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_options: Option<bool>,
}

/// `CollectionResponsePropertyNoPaging`: every property of a type in one answer, no paging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyCollection {
    pub results: Vec<Property>,
}

/// `PropertyCreate`: the body of `POST /crm/v3/properties/{objectType}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub form_field: bool,
}

impl Property {
    /// The model's view of this definition. A contact's `email` counts as unique although its
    /// definition says `hasUniqueValue: false`: HubSpot refuses a second live contact with the
    /// same address. An enumeration whose options are kept elsewhere (`externalOptions`, such
    /// as `hubspot_owner_id`) is read as a type whose values dupdesk cannot check, since its
    /// `options` list is not the set HubSpot validates against.
    pub fn into_def(
        self,
        object: crate::domain::model::ObjectType,
    ) -> crate::domain::model::PropertyDef {
        use crate::domain::model::{ObjectType, PropertyDef, PropertyKind, PropertyOption as Opt};
        let kind = match self.kind.as_str() {
            _ if self.external_options => PropertyKind::Other,
            "string" => PropertyKind::String,
            "number" => PropertyKind::Number,
            "date" => PropertyKind::Date,
            "datetime" => PropertyKind::Datetime,
            "enumeration" => PropertyKind::Enumeration,
            "bool" => PropertyKind::Bool,
            "phone_number" => PropertyKind::PhoneNumber,
            _ => PropertyKind::Other,
        };
        let unique =
            self.has_unique_value || (object == ObjectType::Contacts && self.name == "email");
        PropertyDef {
            read_only: self
                .modification_metadata
                .is_some_and(|m| m.read_only_value),
            calculated: self.calculated,
            unique,
            kind,
            label: self.label,
            field_type: self.field_type,
            options: self
                .options
                .into_iter()
                .map(|o| Opt {
                    value: o.value,
                    label: o.label,
                    hidden: o.hidden,
                })
                .collect(),
            name: self.name,
        }
    }
}

impl SimplePublicObject {
    /// The model's view of this object. Property values stay as sent; history entries keep
    /// HubSpot's newest-first order. A history timestamp that does not parse is dropped, not
    /// guessed.
    pub fn into_record(
        self,
        object_type: crate::domain::model::ObjectType,
    ) -> crate::domain::model::Record {
        use crate::domain::model::{PropertyVersion, Record, parse_ts};
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
