//! The `[matcher]` section of the configuration: which properties of a record type are
//! compared and as which kind of field, the blocking rules as written, the thresholds and the
//! normalization choices. Plain serde data, below both [`crate::config`] and
//! [`crate::domain::matcher`]: the configuration reads it and the matcher checks it into a
//! [`crate::domain::matcher::MatchConfig`]. It holds no rule of matching and no weights.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a property holds. The kind picks the normalizer, the comparator and its agreement
/// levels, the blocking keys derived by default, and whether exact agreement is weighed by how
/// common the value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// A whole name in one property ("Robert J. Smith").
    PersonName,
    GivenName,
    Surname,
    Email,
    Phone,
    Company,
    Domain,
    Address,
    Postcode,
    City,
    /// A date: full (1980-04-12), partial (a year, 1980, or a year and month, 1980-04), or
    /// split over year / month / day properties named together as `"year/month/day"`.
    Date,
    Identifier,
    Text,
    /// Several values in one property (tags, co-workers: "a; b, c"), compared by overlap.
    List,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::PersonName => "person_name",
            FieldKind::GivenName => "given_name",
            FieldKind::Surname => "surname",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Company => "company",
            FieldKind::Domain => "domain",
            FieldKind::Address => "address",
            FieldKind::Postcode => "postcode",
            FieldKind::City => "city",
            FieldKind::Date => "date",
            FieldKind::Identifier => "identifier",
            FieldKind::Text => "text",
            FieldKind::List => "list",
        }
    }

    /// Kinds whose raw values can fail to parse (a date that is no date, a phone with too few
    /// digits), so that `match` can say how many did.
    pub fn parses(self) -> bool {
        matches!(self, FieldKind::Date | FieldKind::Phone)
    }

    /// Kinds whose exact agreement says more for a rare value than for a common one (two
    /// "Zbigniewski" are likelier the same person than two "Smith").
    pub fn frequency_adjusted(self) -> bool {
        matches!(
            self,
            FieldKind::PersonName
                | FieldKind::GivenName
                | FieldKind::Surname
                | FieldKind::City
                | FieldKind::Company
                | FieldKind::Postcode
        )
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One compared property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The property; for a date split over several, `"year/month/day"` (or `"year/month"`).
    pub property: String,
    pub kind: FieldKind,
}

impl FieldSpec {
    /// The record properties the field is read from: the property itself, or the year, month
    /// and day properties of a split date.
    pub fn columns(&self) -> Vec<&str> {
        if self.kind == FieldKind::Date && self.property.contains('/') {
            self.property.split('/').map(str::trim).collect()
        } else {
            vec![self.property.as_str()]
        }
    }
}

/// The schema of one object type as written in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSchemaConfig {
    pub fields: Vec<FieldSpec>,
    /// Blocking rules such as `"email"` or `"lastname+firstname:initial"`. Empty: derived from
    /// the field kinds (see [`crate::domain::matcher::schema::default_blocking`]).
    #[serde(default)]
    pub blocking: Vec<String>,
}

/// Email normalization choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailOptions {
    /// `bob+news@x.com` is `bob@x.com`.
    pub strip_plus_tags: bool,
    /// Gmail ignores dots in the local part and reads googlemail.com as gmail.com.
    pub gmail_dots: bool,
    /// Local parts of role addresses (info@, sales@, ...): they name a team, not a person, so
    /// colleagues share them; such an email counts as missing.
    pub role_addresses: Vec<String>,
}

impl Default for EmailOptions {
    fn default() -> Self {
        EmailOptions {
            strip_plus_tags: true,
            gmail_dots: true,
            role_addresses: [
                "info",
                "sales",
                "office",
                "contact",
                "accounts",
                "team",
                "admin",
                "support",
                "hello",
                "billing",
                "marketing",
                "hr",
                "jobs",
                "careers",
                "service",
                "help",
                "enquiries",
                "inquiries",
                "mail",
                "noreply",
                "no-reply",
                "orders",
                "finance",
                "reception",
                "webmaster",
                "postmaster",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// The `[matcher]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherSettings {
    /// Match probability at or above which a pair links two records into a cluster.
    pub threshold: f64,
    /// Two records whose match probability is below this never share a cluster, whatever
    /// chain of links joins them.
    pub conflict_probability: f64,
    /// A cluster whose weakest link is below this probability is flagged `weak`.
    pub weak_link: f64,
    /// Clusters never grow beyond this many records; a refused link flags `oversized`.
    pub max_cluster_size: usize,
    /// Blocks with more records than this are not compared pair by pair: they are sorted on
    /// the other fields and each record is compared with its `window` next neighbours.
    pub max_block_size: usize,
    pub window: usize,
    /// Trailing digits of a phone number that are compared (drops country and trunk prefixes).
    pub phone_digits: usize,
    pub email: EmailOptions,
    /// Random record pairs drawn to estimate how often non-matches agree by chance.
    pub u_sample_pairs: usize,
    /// Candidate pairs per blocking rule sampled for expectation maximisation.
    pub em_sample_pairs: usize,
    pub em_max_iterations: usize,
    /// How many steward-confirmed pairs weigh as much as the unlabelled estimate.
    pub label_weight: f64,
    /// Seed of the samples, so that a run is reproducible.
    pub seed: u64,
    /// Values that stand for no value ("NA", "NULL", "N/A", "-"), compared without regard to
    /// case or surrounding blanks: read as missing, never as a value records could share.
    pub missing_values: Vec<String>,
    pub contacts: Option<ObjectSchemaConfig>,
    pub companies: Option<ObjectSchemaConfig>,
}

impl Default for MatcherSettings {
    fn default() -> Self {
        MatcherSettings {
            threshold: 0.9,
            conflict_probability: 0.01,
            weak_link: 0.99,
            max_cluster_size: 20,
            max_block_size: 20,
            window: 6,
            phone_digits: 9,
            email: EmailOptions::default(),
            u_sample_pairs: 200_000,
            em_sample_pairs: 50_000,
            em_max_iterations: 200,
            label_weight: 50.0,
            seed: 42,
            missing_values: ["NA", "NULL", "N/A", "-"].map(String::from).to_vec(),
            contacts: None,
            companies: None,
        }
    }
}
