//! The sandbox portal's property definitions and HubSpot's rules for the values written to
//! them. One table drives both the properties API (`GET /crm/v3/properties/{objectType}`) and
//! the checks every create and update passes, so what the sandbox says about a property and
//! what it refuses cannot drift apart; a steward who rehearses against the sandbox meets the
//! refusals a real portal would give. Pure functions over definitions: no storage, no HTTP.
//!
//! The standard definitions follow HubSpot's own (type, field type, label, group) for the
//! properties the sandbox knows; `lifecyclestage` has HubSpot's eight default stages and a
//! company's `industry` HubSpot's default industry list. Properties that seeded records bring
//! beyond those are custom single-line text properties, as an import would make them.
//!
//! Value rules, as HubSpot applies them to API writes:
//! - `""` clears a value and passes every value rule (a read-only or unknown property is still
//!   refused).
//! - Unknown property: `PROPERTY_DOESNT_EXIST`; read-only: `READ_ONLY_VALUE`.
//! - Enumerations (and bools, whose options are `true`/`false`): `INVALID_OPTION` for a value
//!   that is no option's value; checkbox (multi-value) fields take `;`-separated options and
//!   each part is checked.
//! - A contact's `email`: `INVALID_EMAIL` unless it is an RFC 5322 address without a quoted
//!   local part whose domain ends in a top-level domain IANA lists (HubSpot's documented rule).
//! - `date`: `YYYY-MM-DD` or epoch milliseconds at midnight UTC; another instant is
//!   `INVALID_DATE` ("... is at 4:0:0.0 UTC, not midnight!"); `datetime`: epoch milliseconds,
//!   RFC 3339 or `YYYY-MM-DD`; `number`: a decimal number. Anything else is `INVALID_LONG`
//!   ("... was not a valid long."), HubSpot's answer for a value it cannot read as a number.
//! - Non-text values with leading or trailing whitespace: `LEADING_TRAILING_WHITESPACE`.
//!
//! Uniqueness (a contact's email, `hasUniqueValue` properties) needs the other records and is
//! checked by the store; this module only says which properties are unique.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate};

use crate::crm::hubspot::wire::{ModificationMetadata, Property, PropertyOption};
use crate::domain::model::ObjectType;

/// The HubSpot account id the sandbox answers as (HubSpot names it in uniqueness errors).
pub const PORTAL_ID: u64 = 20_260_301;

/// When the sandbox portal's properties were defined, as the properties API reports it.
const DEFINED_AT: &str = "2026-01-01T00:00:00.000Z";

/// HubSpot's object type ids, as its uniqueness errors name them.
pub fn object_type_id(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Contacts => "0-1",
        ObjectType::Companies => "0-2",
    }
}

/// Which options an enumeration of the table has.
#[derive(Clone, Copy)]
enum Options {
    None,
    Lifecycle,
    Industry,
}

/// One row of the standard table: name, label, type, field type, read-only, options.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Options,
);

const CONTACT_ROWS: &[Row] = &[
    ("email", "Email", "string", "text", false, Options::None),
    (
        "firstname",
        "First Name",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "lastname",
        "Last Name",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "phone",
        "Phone Number",
        "string",
        "phonenumber",
        false,
        Options::None,
    ),
    (
        "mobilephone",
        "Mobile Phone Number",
        "string",
        "phonenumber",
        false,
        Options::None,
    ),
    (
        "company",
        "Company Name",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "jobtitle",
        "Job Title",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "website",
        "Website URL",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "address",
        "Street Address",
        "string",
        "text",
        false,
        Options::None,
    ),
    ("city", "City", "string", "text", false, Options::None),
    (
        "state",
        "State/Region",
        "string",
        "text",
        false,
        Options::None,
    ),
    ("zip", "Postal Code", "string", "text", false, Options::None),
    (
        "country",
        "Country/Region",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        false,
        Options::Lifecycle,
    ),
    (
        "createdate",
        "Create Date",
        "datetime",
        "date",
        true,
        Options::None,
    ),
    (
        "lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
        Options::None,
    ),
    (
        "hs_object_id",
        "Record ID",
        "number",
        "number",
        true,
        Options::None,
    ),
    (
        "hs_merged_object_ids",
        "Merged Contact IDs",
        "enumeration",
        "checkbox",
        true,
        Options::None,
    ),
    (
        "hs_additional_emails",
        "Additional email addresses",
        "enumeration",
        "select",
        true,
        Options::None,
    ),
];

const COMPANY_ROWS: &[Row] = &[
    (
        "name",
        "Company name",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "domain",
        "Company Domain Name",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "website",
        "Website URL",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "phone",
        "Phone Number",
        "string",
        "phonenumber",
        false,
        Options::None,
    ),
    (
        "address",
        "Street Address",
        "string",
        "text",
        false,
        Options::None,
    ),
    ("city", "City", "string", "text", false, Options::None),
    (
        "state",
        "State/Region",
        "string",
        "text",
        false,
        Options::None,
    ),
    ("zip", "Postal Code", "string", "text", false, Options::None),
    (
        "country",
        "Country/Region",
        "string",
        "text",
        false,
        Options::None,
    ),
    (
        "industry",
        "Industry",
        "enumeration",
        "select",
        false,
        Options::Industry,
    ),
    (
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        false,
        Options::Lifecycle,
    ),
    (
        "createdate",
        "Create Date",
        "datetime",
        "date",
        true,
        Options::None,
    ),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
        Options::None,
    ),
    (
        "hs_object_id",
        "Record ID",
        "number",
        "number",
        true,
        Options::None,
    ),
    (
        "hs_merged_object_ids",
        "Merged Company IDs",
        "enumeration",
        "checkbox",
        true,
        Options::None,
    ),
    (
        "hs_additional_domains",
        "Additional Domains",
        "enumeration",
        "checkbox",
        true,
        Options::None,
    ),
];

/// The custom properties the sandbox portal is set up with, beyond HubSpot's own.
const CUSTOM_ROWS: &[(&str, &str)] = &[("erp_customer_id", "ERP customer ID")];

/// HubSpot's default lifecycle stages, in funnel order (value, label).
pub const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

/// The option values of HubSpot's default company `industry` property.
pub const INDUSTRIES: &[&str] = &[
    "ACCOUNTING",
    "AIRLINES_AVIATION",
    "ALTERNATIVE_DISPUTE_RESOLUTION",
    "ALTERNATIVE_MEDICINE",
    "ANIMATION",
    "APPAREL_FASHION",
    "ARCHITECTURE_PLANNING",
    "ARTS_AND_CRAFTS",
    "AUTOMOTIVE",
    "AVIATION_AEROSPACE",
    "BANKING",
    "BIOTECHNOLOGY",
    "BROADCAST_MEDIA",
    "BUILDING_MATERIALS",
    "BUSINESS_SUPPLIES_AND_EQUIPMENT",
    "CAPITAL_MARKETS",
    "CHEMICALS",
    "CIVIC_SOCIAL_ORGANIZATION",
    "CIVIL_ENGINEERING",
    "COMMERCIAL_REAL_ESTATE",
    "COMPUTER_NETWORK_SECURITY",
    "COMPUTER_GAMES",
    "COMPUTER_HARDWARE",
    "COMPUTER_NETWORKING",
    "COMPUTER_SOFTWARE",
    "INTERNET",
    "CONSTRUCTION",
    "CONSUMER_ELECTRONICS",
    "CONSUMER_GOODS",
    "CONSUMER_SERVICES",
    "COSMETICS",
    "DAIRY",
    "DEFENSE_SPACE",
    "DESIGN",
    "EDUCATION_MANAGEMENT",
    "E_LEARNING",
    "ELECTRICAL_ELECTRONIC_MANUFACTURING",
    "ENTERTAINMENT",
    "ENVIRONMENTAL_SERVICES",
    "EVENTS_SERVICES",
    "EXECUTIVE_OFFICE",
    "FACILITIES_SERVICES",
    "FARMING",
    "FINANCIAL_SERVICES",
    "FINE_ART",
    "FISHERY",
    "FOOD_BEVERAGES",
    "FOOD_PRODUCTION",
    "FUND_RAISING",
    "FURNITURE",
    "GAMBLING_CASINOS",
    "GLASS_CERAMICS_CONCRETE",
    "GOVERNMENT_ADMINISTRATION",
    "GOVERNMENT_RELATIONS",
    "GRAPHIC_DESIGN",
    "HEALTH_WELLNESS_AND_FITNESS",
    "HIGHER_EDUCATION",
    "HOSPITAL_HEALTH_CARE",
    "HOSPITALITY",
    "HUMAN_RESOURCES",
    "IMPORT_AND_EXPORT",
    "INDIVIDUAL_FAMILY_SERVICES",
    "INDUSTRIAL_AUTOMATION",
    "INFORMATION_SERVICES",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "INSURANCE",
    "INTERNATIONAL_AFFAIRS",
    "INTERNATIONAL_TRADE_AND_DEVELOPMENT",
    "INVESTMENT_BANKING",
    "INVESTMENT_MANAGEMENT",
    "JUDICIARY",
    "LAW_ENFORCEMENT",
    "LAW_PRACTICE",
    "LEGAL_SERVICES",
    "LEGISLATIVE_OFFICE",
    "LEISURE_TRAVEL_TOURISM",
    "LIBRARIES",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "LUXURY_GOODS_JEWELRY",
    "MACHINERY",
    "MANAGEMENT_CONSULTING",
    "MARITIME",
    "MARKET_RESEARCH",
    "MARKETING_AND_ADVERTISING",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "MEDIA_PRODUCTION",
    "MEDICAL_DEVICES",
    "MEDICAL_PRACTICE",
    "MENTAL_HEALTH_CARE",
    "MILITARY",
    "MINING_METALS",
    "MOTION_PICTURES_AND_FILM",
    "MUSEUMS_AND_INSTITUTIONS",
    "MUSIC",
    "NANOTECHNOLOGY",
    "NEWSPAPERS",
    "NON_PROFIT_ORGANIZATION_MANAGEMENT",
    "OIL_ENERGY",
    "ONLINE_MEDIA",
    "OUTSOURCING_OFFSHORING",
    "PACKAGE_FREIGHT_DELIVERY",
    "PACKAGING_AND_CONTAINERS",
    "PAPER_FOREST_PRODUCTS",
    "PERFORMING_ARTS",
    "PHARMACEUTICALS",
    "PHILANTHROPY",
    "PHOTOGRAPHY",
    "PLASTICS",
    "POLITICAL_ORGANIZATION",
    "PRIMARY_SECONDARY_EDUCATION",
    "PRINTING",
    "PROFESSIONAL_TRAINING_COACHING",
    "PROGRAM_DEVELOPMENT",
    "PUBLIC_POLICY",
    "PUBLIC_RELATIONS_AND_COMMUNICATIONS",
    "PUBLIC_SAFETY",
    "PUBLISHING",
    "RAILROAD_MANUFACTURE",
    "RANCHING",
    "REAL_ESTATE",
    "RECREATIONAL_FACILITIES_AND_SERVICES",
    "RELIGIOUS_INSTITUTIONS",
    "RENEWABLES_ENVIRONMENT",
    "RESEARCH",
    "RESTAURANTS",
    "RETAIL",
    "SECURITY_AND_INVESTIGATIONS",
    "SEMICONDUCTORS",
    "SHIPBUILDING",
    "SPORTING_GOODS",
    "SPORTS",
    "STAFFING_AND_RECRUITING",
    "SUPERMARKETS",
    "TELECOMMUNICATIONS",
    "TEXTILES",
    "THINK_TANKS",
    "TOBACCO",
    "TRANSLATION_AND_LOCALIZATION",
    "TRANSPORTATION_TRUCKING_RAILROAD",
    "UTILITIES",
    "VENTURE_CAPITAL_PRIVATE_EQUITY",
    "VETERINARY",
    "WAREHOUSING",
    "WHOLESALE",
    "WINE_AND_SPIRITS",
    "WIRELESS",
    "WRITING_AND_EDITING",
    "MOBILE_GAMES",
];

/// "COMPUTER_SOFTWARE" -> "Computer Software": the sandbox's label for an industry option.
fn industry_label(value: &str) -> String {
    value
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_string() + &c.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn options(which: Options) -> Vec<PropertyOption> {
    let option = |(i, (value, label)): (usize, (String, String))| PropertyOption {
        label,
        value,
        description: None,
        display_order: Some(i32::try_from(i).unwrap_or(i32::MAX)),
        hidden: false,
    };
    match which {
        Options::None => Vec::new(),
        Options::Lifecycle => LIFECYCLE_STAGES
            .iter()
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .enumerate()
            .map(option)
            .collect(),
        Options::Industry => INDUSTRIES
            .iter()
            .map(|v| (v.to_string(), industry_label(v)))
            .enumerate()
            .map(option)
            .collect(),
    }
}

fn group(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Contacts => "contactinformation",
        ObjectType::Companies => "companyinformation",
    }
}

fn from_row(t: ObjectType, order: usize, row: &Row) -> Property {
    let (name, label, kind, field_type, read_only, which) = *row;
    Property {
        name: name.to_string(),
        label: label.to_string(),
        kind: kind.to_string(),
        field_type: field_type.to_string(),
        description: String::new(),
        group_name: group(t).to_string(),
        options: options(which),
        display_order: Some(i32::try_from(order).unwrap_or(i32::MAX)),
        calculated: false,
        external_options: false,
        has_unique_value: false,
        hidden: false,
        hubspot_defined: Some(true),
        modification_metadata: Some(ModificationMetadata {
            archivable: false,
            read_only_definition: true,
            read_only_value: read_only,
            read_only_options: Some(!matches!(which, Options::Lifecycle)),
        }),
        form_field: !read_only,
        created_at: Some(DEFINED_AT.to_string()),
        updated_at: Some(DEFINED_AT.to_string()),
        archived: false,
    }
}

/// A custom single-line text property: what the sandbox makes of a property a seeded record
/// brings, as a portal's import would.
pub fn custom_text(t: ObjectType, name: &str, label: &str) -> Property {
    Property {
        name: name.to_string(),
        label: label.to_string(),
        kind: "string".to_string(),
        field_type: "text".to_string(),
        description: String::new(),
        group_name: group(t).to_string(),
        options: Vec::new(),
        display_order: Some(-1),
        calculated: false,
        external_options: false,
        has_unique_value: false,
        hidden: false,
        hubspot_defined: None,
        modification_metadata: Some(ModificationMetadata {
            archivable: true,
            read_only_definition: false,
            read_only_value: false,
            read_only_options: None,
        }),
        form_field: true,
        created_at: Some(DEFINED_AT.to_string()),
        updated_at: Some(DEFINED_AT.to_string()),
        archived: false,
    }
}

static STANDARD: LazyLock<BTreeMap<ObjectType, Vec<Property>>> = LazyLock::new(|| {
    ObjectType::ALL
        .iter()
        .map(|&t| {
            let rows = match t {
                ObjectType::Contacts => CONTACT_ROWS,
                ObjectType::Companies => COMPANY_ROWS,
            };
            let mut defs: Vec<Property> = rows
                .iter()
                .enumerate()
                .map(|(i, row)| from_row(t, i, row))
                .collect();
            defs.extend(
                CUSTOM_ROWS
                    .iter()
                    .map(|(name, label)| custom_text(t, name, label)),
            );
            (t, defs)
        })
        .collect()
});

/// The properties every record of a type has in the sandbox portal: HubSpot's own that the
/// sandbox knows, and the custom properties the portal is set up with.
pub fn standard(t: ObjectType) -> &'static [Property] {
    STANDARD.get(&t).map(Vec::as_slice).unwrap_or_default()
}

pub fn is_standard(t: ObjectType, name: &str) -> bool {
    standard(t).iter().any(|p| p.name == name)
}

/// Whether search compares this property's values as instants: a standard `date` or
/// `datetime` property of either type.
pub fn is_instant(name: &str) -> bool {
    STANDARD
        .values()
        .flatten()
        .any(|p| p.name == name && matches!(p.kind.as_str(), "date" | "datetime"))
}

/// Why HubSpot refuses one property of a write: its error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    fn new(name: &str, code: &'static str, message: String) -> Problem {
        Problem {
            name: name.to_string(),
            code,
            message,
        }
    }
}

/// Everything HubSpot would refuse in one record's write, in property-name order. `defs` are
/// the type's definitions by name.
pub fn check_write(
    t: ObjectType,
    defs: &BTreeMap<String, Property>,
    props: &BTreeMap<String, String>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, value) in props {
        let Some(def) = defs.get(name) else {
            problems.push(Problem::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
            continue;
        };
        if def.modification_metadata.is_some_and(|m| m.read_only_value) || def.calculated {
            problems.push(Problem::new(
                name,
                "READ_ONLY_VALUE",
                format!("\"{name}\" is a read only property; its value cannot be set."),
            ));
            continue;
        }
        problems.extend(check_value(t, def, value));
    }
    problems
}

/// HubSpot's value rules for one property (see the module doc). `""` always passes.
pub fn check_value(t: ObjectType, def: &Property, value: &str) -> Vec<Problem> {
    let name = def.name.as_str();
    if value.is_empty() {
        return Vec::new();
    }
    let one = |code, message| vec![Problem::new(name, code, message)];
    if def.kind != "string" && def.kind != "phone_number" && value.trim() != value {
        return one(
            "LEADING_TRAILING_WHITESPACE",
            format!("\"{value}\" includes leading or trailing whitespace."),
        );
    }
    let not_a_long = || one("INVALID_LONG", format!("{value} was not a valid long."));
    match def.kind.as_str() {
        "string" if t == ObjectType::Contacts && name == "email" => {
            if valid_email(value) {
                Vec::new()
            } else {
                one("INVALID_EMAIL", format!("Email address {value} is invalid"))
            }
        }
        "enumeration" | "bool" if !def.external_options => {
            let allowed: HashSet<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
            let listed = def
                .options
                .iter()
                .map(|o| o.value.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let parts: Vec<&str> = if def.field_type == "checkbox" {
                value.split(';').filter(|p| !p.is_empty()).collect()
            } else {
                vec![value]
            };
            parts
                .into_iter()
                .filter(|p| !allowed.contains(p))
                .map(|p| {
                    Problem::new(
                        name,
                        "INVALID_OPTION",
                        format!("{p} was not one of the allowed options: [{listed}]"),
                    )
                })
                .collect()
        }
        "number" if !is_decimal(value) => not_a_long(),
        "datetime" if instant_millis(value).is_none() => not_a_long(),
        "date" => match instant_millis(value) {
            None => not_a_long(),
            Some(ms) => {
                let in_day = ms.rem_euclid(86_400_000);
                if in_day == 0 {
                    Vec::new()
                } else {
                    let (h, m) = (in_day / 3_600_000, in_day / 60_000 % 60);
                    let (s, milli) = (in_day / 1000 % 60, in_day % 1000);
                    one(
                        "INVALID_DATE",
                        format!("{ms} is at {h}:{m}:{s}.{milli} UTC, not midnight!"),
                    )
                }
            }
        },
        _ => Vec::new(),
    }
}

/// Epoch milliseconds, RFC 3339, or a calendar day (midnight UTC), as milliseconds.
fn instant_millis(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok();
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(value) {
        return Some(d.timestamp_millis());
    }
    if value.len() == 10 {
        return NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp_millis());
    }
    None
}

/// `-12`, `3.5`: what a number property takes.
fn is_decimal(value: &str) -> bool {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// The top-level domains IANA lists, in their Unicode form: the last label of every entry of
/// the ICANN section of Debian's `publicsuffix` package (2023-02-09), since some TLDs (`za`)
/// appear there only under their second-level names.
static TLDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/tlds.txt"))
        .lines()
        .collect()
});

/// HubSpot's documented rule for a contact's email: valid by RFC 5322 (dot-atom form), no
/// quoted local part, and a domain that ends in a top-level domain IANA lists. Punycode TLDs
/// (`xn--...`) are taken on trust, since the list holds the Unicode forms.
pub fn valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let atext =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c) || !c.is_ascii();
    let dot_atom = |s: &str, ok: &dyn Fn(char) -> bool| {
        !s.is_empty()
            && s.split('.')
                .all(|part| !part.is_empty() && part.chars().all(ok))
    };
    if local.len() > 64 || !dot_atom(local, &atext) {
        return false;
    }
    let label = |c: char| c.is_alphanumeric() || c == '-';
    let labels: Vec<&str> = domain.split('.').collect();
    if domain.len() > 253
        || labels.len() < 2
        || !dot_atom(domain, &label)
        || labels
            .iter()
            .any(|l| l.starts_with('-') || l.ends_with('-') || l.len() > 63)
    {
        return false;
    }
    let tld = labels.last().map(|l| l.to_lowercase()).unwrap_or_default();
    tld.starts_with("xn--") || TLDS.contains(tld.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(t: ObjectType, name: &str) -> Property {
        standard(t)
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no standard {t} property {name}"))
    }

    fn codes(t: ObjectType, name: &str, value: &str) -> Vec<&'static str> {
        check_value(t, &def(t, name), value)
            .into_iter()
            .map(|p| p.code)
            .collect()
    }

    const C: ObjectType = ObjectType::Contacts;

    #[test]
    fn emails_follow_hubspots_rule() {
        for ok in [
            "anna.berg@example.com",
            "a+tag@mail.example.de",
            "x@test.design",
            "o'brien@example.ie",
            "user@email.삼성",
            "jesus@crescentconstruction.co.za",
        ] {
            assert!(valid_email(ok), "{ok} should pass");
        }
        for bad in [
            "anna.berg",
            "anna@",
            "@example.com",
            "anna@example",
            "bcooper@example.con",
            "example.lcom",
            "\"Test Email\"@hubspot.com",
            "anna..berg@example.com",
            "anna berg@example.com",
            "anna@-example.com",
            " anna@example.com",
        ] {
            assert!(!valid_email(bad), "{bad} should be refused");
        }
        assert_eq!(codes(C, "email", "anna@"), ["INVALID_EMAIL"]);
        assert_eq!(codes(C, "email", ""), Vec::<&str>::new());
    }

    #[test]
    fn options_are_checked_by_value_and_multi_values_part_by_part() {
        assert!(codes(C, "lifecyclestage", "customer").is_empty());
        assert_eq!(codes(C, "lifecyclestage", "Customer"), ["INVALID_OPTION"]);
        let p = check_value(C, &def(C, "lifecyclestage"), "vip");
        assert_eq!(
            p[0].message,
            "vip was not one of the allowed options: [subscriber, lead, marketingqualifiedlead, \
             salesqualifiedlead, opportunity, customer, evangelist, other]"
        );
        let mut multi = def(C, "lifecyclestage");
        multi.field_type = "checkbox".into();
        let p = check_value(C, &multi, "lead;vip;customer;gold");
        assert_eq!(p.len(), 2);
        assert!(p[0].message.starts_with("vip was not"));
        assert!(p[1].message.starts_with("gold was not"));
        assert_eq!(
            codes(C, "lifecyclestage", " lead"),
            ["LEADING_TRAILING_WHITESPACE"]
        );
        assert!(codes(ObjectType::Companies, "industry", "COMPUTER_SOFTWARE").is_empty());
        assert_eq!(
            codes(ObjectType::Companies, "industry", "Software"),
            ["INVALID_OPTION"]
        );
    }

    #[test]
    fn dates_must_be_midnight_and_numbers_numbers() {
        let mut d = def(C, "createdate");
        d.kind = "date".into();
        assert!(check_value(C, &d, "2026-08-10").is_empty());
        assert!(check_value(C, &d, "1786320000000").is_empty());
        let p = check_value(C, &d, "1786334400000");
        assert_eq!(p[0].code, "INVALID_DATE");
        assert_eq!(
            p[0].message,
            "1786334400000 is at 4:0:0.0 UTC, not midnight!"
        );
        let p = check_value(C, &d, "1521225089103");
        assert_eq!(
            p[0].message,
            "1521225089103 is at 18:31:29.103 UTC, not midnight!"
        );
        assert_eq!(check_value(C, &d, "tomorrow")[0].code, "INVALID_LONG");
        d.kind = "datetime".into();
        assert!(check_value(C, &d, "2026-03-01T10:00:00.000Z").is_empty());
        assert!(check_value(C, &d, "1786334400000").is_empty());
        assert_eq!(
            check_value(C, &d, "1/1/1")[0].message,
            "1/1/1 was not a valid long."
        );
        d.kind = "number".into();
        for ok in ["12", "-3.5", "0"] {
            assert!(check_value(C, &d, ok).is_empty(), "{ok}");
        }
        for bad in ["1,5", "abc", "1e3", "."] {
            assert_eq!(check_value(C, &d, bad)[0].code, "INVALID_LONG", "{bad}");
        }
    }

    #[test]
    fn unknown_and_read_only_properties_are_named() {
        let defs: BTreeMap<String, Property> = standard(C)
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let props = BTreeMap::from([
            ("hs_object_id".to_string(), String::new()),
            ("favourite_colour".to_string(), "blue".to_string()),
            ("city".to_string(), "Bonn".to_string()),
        ]);
        let p = check_write(C, &defs, &props);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].code, "PROPERTY_DOESNT_EXIST");
        assert_eq!(p[0].message, "Property \"favourite_colour\" does not exist");
        assert_eq!(p[1].code, "READ_ONLY_VALUE");
        assert!(is_instant("lastmodifieddate") && is_instant("hs_lastmodifieddate"));
        assert!(!is_instant("email"));
        assert_eq!(industry_label("COMPUTER_SOFTWARE"), "Computer Software");
    }
}
