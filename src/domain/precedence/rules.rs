//! The precedence rules file: its TOML format, its validation, and the resolved per-field
//! policy the engine reads. Every name in the file is checked when it is loaded, and a mistake
//! is refused with the file, the line and what is wrong, so a bad rule can never quietly pick
//! the wrong surviving value. This module knows nothing about records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::formats::Format;
use super::hygiene::ValuePolicy;
use crate::config::SourcesConfig;

/// The embedded default rules.
pub const DEFAULT_RULES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/precedence.toml"
));

/// How the embedded default names itself in errors.
pub const DEFAULT_ORIGIN: &str = "the embedded default rules (assets/precedence.toml)";

/// A way to choose among the differing values of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    MostRecent,
    MostComplete,
    ValidFormat,
    MostCommon,
    Longest,
    FromPrimary,
    SourceRank,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::MostRecent,
        Strategy::MostComplete,
        Strategy::ValidFormat,
        Strategy::MostCommon,
        Strategy::Longest,
        Strategy::FromPrimary,
        Strategy::SourceRank,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::MostRecent => "most_recent",
            Strategy::MostComplete => "most_complete",
            Strategy::ValidFormat => "valid_format",
            Strategy::MostCommon => "most_common",
            Strategy::Longest => "longest",
            Strategy::FromPrimary => "from_primary",
            Strategy::SourceRank => "source_rank",
        }
    }

    fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A way to choose the primary record of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryStrategy {
    SystemOfRecord,
    Oldest,
    Newest,
    MostComplete,
}

impl PrimaryStrategy {
    pub const ALL: [PrimaryStrategy; 4] = [
        PrimaryStrategy::SystemOfRecord,
        PrimaryStrategy::Oldest,
        PrimaryStrategy::Newest,
        PrimaryStrategy::MostComplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryStrategy::SystemOfRecord => "system_of_record",
            PrimaryStrategy::Oldest => "oldest",
            PrimaryStrategy::Newest => "newest",
            PrimaryStrategy::MostComplete => "most_complete",
        }
    }

    fn parse(name: &str) -> Option<PrimaryStrategy> {
        PrimaryStrategy::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// What kind of mistake a rules file holds, for callers and tests that must tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesErrorKind {
    /// Not TOML, an unknown key or a value of the wrong type.
    Syntax,
    UnknownStrategy,
    UnknownSystem,
    UnknownFormat,
    /// An `inherits` names no rule.
    UnknownRule,
    /// `inherits` links that lead back to where they started.
    Cycle,
    /// A name given twice where it must be unique.
    Duplicate,
    /// A rule that could never apply or that leaves the engine nothing to do.
    Invalid,
}

/// A refused rules file: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct RulesError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub kind: RulesErrorKind,
    pub message: String,
}

/// A place in the rules file, kept for checks made after parsing (against the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn of(text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before.get(line_start..).map_or(0, |s| s.chars().count()) + 1,
        }
    }
}

/// The owner and strategies that apply to one field, after groups and `inherits` are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPolicy {
    /// The system of record for this field.
    pub owner: Option<String>,
    /// The rule or group that declared the owner, for the reason ("erp owns billing").
    pub owner_scope: String,
    pub strategies: Vec<Strategy>,
    pub format: Option<Format>,
    /// How the field's values are judged (junk) and tidied (the normalizer).
    pub values: ValuePolicy,
}

/// How the primary record is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryRule {
    pub system: Option<String>,
    pub chain: Vec<PrimaryStrategy>,
}

/// Validated precedence rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    origin: String,
    ranking: Vec<String>,
    ranking_at: Position,
    /// System → the fields it alone may supply (groups expanded).
    only: BTreeMap<String, BTreeSet<String>>,
    read_only: BTreeSet<String>,
    groups: BTreeMap<String, Vec<String>>,
    group_of: BTreeMap<String, String>,
    formats: BTreeMap<String, Format>,
    default: Vec<Strategy>,
    /// `[values]`: the value policy of fields whose rules leave it out.
    values: ValuePolicy,
    /// Rules by field or group name, inheritance resolved.
    rules: BTreeMap<String, Resolved>,
    primary: PrimaryRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    owner: Option<(String, String)>,
    strategies: Vec<Strategy>,
    values: ValueKeys,
}

/// The value-policy keys one table sets; the rest come from further up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ValueKeys {
    max_chars: Option<usize>,
    trim: Option<bool>,
    collapse_spaces: Option<bool>,
    line_breaks: Option<bool>,
}

impl ValueKeys {
    /// These keys, with the ones they leave out taken from `further`.
    fn or(self, further: ValueKeys) -> ValueKeys {
        ValueKeys {
            max_chars: self.max_chars.or(further.max_chars),
            trim: self.trim.or(further.trim),
            collapse_spaces: self.collapse_spaces.or(further.collapse_spaces),
            line_breaks: self.line_breaks.or(further.line_breaks),
        }
    }

    fn over(self, base: ValuePolicy) -> ValuePolicy {
        ValuePolicy {
            max_chars: self.max_chars.unwrap_or(base.max_chars),
            trim: self.trim.unwrap_or(base.trim),
            collapse_spaces: self.collapse_spaces.unwrap_or(base.collapse_spaces),
            line_breaks: self.line_breaks.unwrap_or(base.line_breaks),
        }
    }
}

impl Rules {
    /// The rules from a file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Rules> {
        match path {
            None => Ok(Rules::parse(DEFAULT_RULES, DEFAULT_ORIGIN)?),
            Some(path) => {
                // Read whole to be parsed, so capped: a rules file is a few KiB.
                let text = crate::input::read_small_text(path, crate::input::MAX_TOML_BYTES)
                    .with_context(|| format!("reading precedence rules {}", path.display()))?;
                Ok(Rules::parse(&text, &path.display().to_string())?)
            }
        }
    }

    /// The rules a configuration names (`precedence.rules`, empty for the embedded default),
    /// checked against its `[sources]`: every system a source rule can name must be ranked.
    pub fn for_config(config: &crate::config::Config) -> anyhow::Result<Rules> {
        let path = &config.precedence.rules;
        let rules = Rules::load((!path.as_os_str().is_empty()).then_some(path.as_path()))?;
        rules.check_sources(&config.sources)?;
        Ok(rules)
    }

    /// Parse and validate a rules file. `origin` names it in errors (usually its path).
    pub fn parse(text: &str, origin: &str) -> Result<Rules, RulesError> {
        let raw: RawRules = toml::from_str(text).map_err(|e| RulesError {
            origin: origin.to_string(),
            line: Position::of(text, e.span().map_or(0, |s| s.start)).line,
            column: Position::of(text, e.span().map_or(0, |s| s.start)).column,
            kind: RulesErrorKind::Syntax,
            message: crate::input::excerpt(e.message().trim(), crate::input::MESSAGE_CHARS),
        })?;
        Checker { text, origin }.build(raw)
    }

    /// Refuse rules that leave out a system the configuration's source rules can produce:
    /// its values would otherwise rank below every other silently.
    pub fn check_sources(&self, sources: &SourcesConfig) -> Result<(), RulesError> {
        let produced = sources
            .rules
            .iter()
            .map(|r| r.system.as_str())
            .chain(std::iter::once(sources.default_system.as_str()));
        for system in produced {
            if self.rank(system).is_none() {
                return Err(RulesError {
                    origin: self.origin.clone(),
                    line: self.ranking_at.line,
                    column: self.ranking_at.column,
                    kind: RulesErrorKind::UnknownSystem,
                    message: format!(
                        "the configuration's [sources] name system {system:?}, which systems.ranking does not list"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Where these rules came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Source systems, most reliable first.
    pub fn ranking(&self) -> &[String] {
        &self.ranking
    }

    /// A system's place in the ranking (0 is the most reliable).
    pub fn rank(&self, system: &str) -> Option<usize> {
        self.ranking.iter().position(|s| s == system)
    }

    /// Fields never written back.
    pub fn is_read_only(&self, field: &str) -> bool {
        self.read_only.contains(field)
    }

    /// Whether values written by `system` may be chosen for `field` (`[systems.only]`).
    pub fn may_write(&self, system: &str, field: &str) -> bool {
        self.only
            .get(system)
            .is_none_or(|fields| fields.contains(field))
    }

    /// The group a field belongs to.
    pub fn group_of(&self, field: &str) -> Option<&str> {
        self.group_of.get(field).map(String::as_str)
    }

    pub fn groups(&self) -> &BTreeMap<String, Vec<String>> {
        &self.groups
    }

    pub fn primary(&self) -> &PrimaryRule {
        &self.primary
    }

    /// The `[values]` policy: what fields without a value rule of their own get.
    pub fn values(&self) -> ValuePolicy {
        self.values
    }

    /// The policy for one field: its own rule, else its group's, else the default list.
    pub fn policy(&self, field: &str) -> FieldPolicy {
        let rule = self
            .rules
            .get(field)
            .or_else(|| self.group_of(field).and_then(|g| self.rules.get(g)));
        let (owner, owner_scope) = match rule.and_then(|r| r.owner.clone()) {
            Some((owner, scope)) => (Some(owner), scope),
            None => (None, String::new()),
        };
        FieldPolicy {
            owner,
            owner_scope,
            strategies: rule
                .map(|r| r.strategies.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| self.default.clone()),
            format: self.formats.get(field).copied(),
            values: rule
                .map_or(ValueKeys::default(), |r| r.values)
                .over(self.values),
        }
    }
}

// ---- the file as written -------------------------------------------------------------------

type Name = Spanned<String>;
type NameList = Spanned<Vec<Name>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    read_only: Vec<Name>,
    systems: RawSystems,
    #[serde(default)]
    groups: BTreeMap<Name, Vec<Name>>,
    #[serde(default)]
    formats: BTreeMap<Name, Vec<Name>>,
    default: RawDefault,
    #[serde(default)]
    values: RawValues,
    #[serde(default)]
    rules: BTreeMap<Name, RawRule>,
    primary: RawPrimary,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystems {
    ranking: NameList,
    #[serde(default)]
    only: BTreeMap<Name, Vec<Name>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    strategies: NameList,
}

/// `[values]`, and the same keys in a rule (serde cannot flatten them into a table that
/// refuses unknown keys, so they are listed twice).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawValues {
    max_chars: Option<Spanned<i64>>,
    trim: Option<bool>,
    collapse_spaces: Option<bool>,
    line_breaks: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    owner: Option<Name>,
    strategies: Option<NameList>,
    inherits: Option<Name>,
    max_chars: Option<Spanned<i64>>,
    trim: Option<bool>,
    collapse_spaces: Option<bool>,
    line_breaks: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrimary {
    system: Option<Name>,
    rule: NameList,
}

/// Table entries in the order they appear in the file, so that of two clashing entries the
/// later one is reported.
fn in_file_order<V>(table: &BTreeMap<Name, V>) -> Vec<(&Name, &V)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    entries
}

// ---- validation ----------------------------------------------------------------------------

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: Range<usize>, kind: RulesErrorKind, message: String) -> RulesError {
        let at = Position::of(self.text, span.start);
        RulesError {
            origin: self.origin.to_string(),
            line: at.line,
            column: at.column,
            kind,
            // The messages quote the file's names, which may be as long as the file.
            message: crate::input::excerpt(&message, crate::input::MESSAGE_CHARS),
        }
    }

    fn build(&self, raw: RawRules) -> Result<Rules, RulesError> {
        let ranking = self.ranking(&raw.systems.ranking)?;
        let known_system = |name: &Name, what: &str| -> Result<String, RulesError> {
            if ranking.iter().any(|s| s == name.get_ref()) {
                Ok(name.get_ref().clone())
            } else {
                Err(self.error(
                    name.span(),
                    RulesErrorKind::UnknownSystem,
                    format!(
                        "{what} names unknown system {:?} (systems.ranking lists {})",
                        name.get_ref(),
                        ranking.join(", ")
                    ),
                ))
            }
        };

        let mut read_only = BTreeSet::new();
        for field in &raw.read_only {
            if !read_only.insert(field.get_ref().clone()) {
                return Err(self.duplicate(field, "read_only"));
            }
        }

        let mut groups = BTreeMap::new();
        let mut group_of: BTreeMap<String, String> = BTreeMap::new();
        for (group, fields) in in_file_order(&raw.groups) {
            let mut members = Vec::new();
            for field in fields {
                if let Some(other) = group_of.get(field.get_ref()) {
                    return Err(self.error(
                        field.span(),
                        RulesErrorKind::Duplicate,
                        format!(
                            "field {:?} is in group {other:?} already; a field belongs to one group",
                            field.get_ref()
                        ),
                    ));
                }
                group_of.insert(field.get_ref().clone(), group.get_ref().clone());
                members.push(field.get_ref().clone());
            }
            groups.insert(group.get_ref().clone(), members);
        }
        for group in raw.groups.keys() {
            if let Some(other) = group_of.get(group.get_ref()) {
                return Err(self.error(
                    group.span(),
                    RulesErrorKind::Duplicate,
                    format!(
                        "group {:?} has the name of a field of group {other:?}",
                        group.get_ref()
                    ),
                ));
            }
        }
        // A group name stands for its fields wherever fields are listed.
        let expand = |name: &Name| -> Vec<String> {
            groups
                .get(name.get_ref())
                .cloned()
                .unwrap_or_else(|| vec![name.get_ref().clone()])
        };

        let mut only = BTreeMap::new();
        for (system, names) in in_file_order(&raw.systems.only) {
            let system = known_system(system, "systems.only")?;
            only.insert(
                system,
                names.iter().flat_map(&expand).collect::<BTreeSet<_>>(),
            );
        }

        let mut formats = BTreeMap::new();
        for (format, fields) in in_file_order(&raw.formats) {
            let parsed = Format::parse(format.get_ref()).ok_or_else(|| {
                self.error(
                    format.span(),
                    RulesErrorKind::UnknownFormat,
                    format!(
                        "unknown format {:?} (known: {})",
                        format.get_ref(),
                        Format::ALL.map(Format::as_str).join(", ")
                    ),
                )
            })?;
            for name in fields {
                for field in expand(name) {
                    if formats.insert(field.clone(), parsed).is_some() {
                        return Err(self.error(
                            name.span(),
                            RulesErrorKind::Duplicate,
                            format!("field {field:?} has two formats"),
                        ));
                    }
                }
            }
        }

        let default = self.strategies(&raw.default.strategies, "default.strategies")?;
        let values = self
            .value_keys(&raw.values, "values")?
            .over(ValuePolicy::DEFAULT);

        // Each rule as written, then resolved along its inheritance chain.
        struct Own {
            owner: Option<String>,
            strategies: Vec<Strategy>,
            values: ValueKeys,
            parent: Option<String>,
            explicit: Option<Name>,
            at: Range<usize>,
            owner_at: Option<Range<usize>>,
        }
        let mut own: BTreeMap<String, Own> = BTreeMap::new();
        for (name, rule) in in_file_order(&raw.rules) {
            if read_only.contains(name.get_ref()) {
                return Err(self.error(
                    name.span(),
                    RulesErrorKind::Invalid,
                    format!(
                        "{:?} is read-only, so a rule for it would never apply",
                        name.get_ref()
                    ),
                ));
            }
            let owner = match &rule.owner {
                Some(o) => Some(known_system(
                    o,
                    &format!("the owner of {:?}", name.get_ref()),
                )?),
                None => None,
            };
            let strategies = match &rule.strategies {
                Some(list) => self.strategies(list, &format!("rules.{}", name.get_ref()))?,
                None => Vec::new(),
            };
            let values = self.value_keys(
                &RawValues {
                    max_chars: rule.max_chars.clone(),
                    trim: rule.trim,
                    collapse_spaces: rule.collapse_spaces,
                    line_breaks: rule.line_breaks,
                },
                &format!("rules.{}", name.get_ref()),
            )?;
            if let Some(target) = &rule.inherits
                && !raw.rules.contains_key(target.get_ref().as_str())
            {
                return Err(self.error(
                    target.span(),
                    RulesErrorKind::UnknownRule,
                    format!(
                        "rules.{} inherits {:?}, which has no rule",
                        name.get_ref(),
                        target.get_ref()
                    ),
                ));
            }
            // Without `inherits`, a field rule takes what it leaves out from its group's rule.
            let parent = rule
                .inherits
                .as_ref()
                .map(|t| t.get_ref().clone())
                .or_else(|| {
                    group_of
                        .get(name.get_ref())
                        .filter(|g| raw.rules.contains_key(g.as_str()))
                        .cloned()
                });
            own.insert(
                name.get_ref().clone(),
                Own {
                    owner,
                    strategies,
                    values,
                    parent,
                    explicit: rule.inherits.clone(),
                    at: name.span(),
                    owner_at: rule.owner.as_ref().map(Name::span),
                },
            );
        }

        let mut order: Vec<&String> = own.keys().collect();
        order.sort_by_key(|name| own[*name].at.start);
        let mut rules = BTreeMap::new();
        for name in order {
            let mut chain = vec![name.clone()];
            let mut owner = None;
            let mut strategies = Vec::new();
            let mut values = ValueKeys::default();
            let mut at = Some(name);
            while let Some(current) = at {
                let Some(rule) = own.get(current) else { break };
                if owner.is_none() {
                    owner = rule.owner.clone().map(|o| (o, current.clone()));
                }
                if strategies.is_empty() {
                    strategies = rule.strategies.clone();
                }
                values = values.or(rule.values);
                at = rule.parent.as_ref();
                if let Some(next) = at {
                    if let Some(start) = chain.iter().position(|c| c == next) {
                        let mut cycle = chain[start..].to_vec();
                        cycle.push(next.clone());
                        let first = &own[&chain[start]];
                        let span = first.explicit.as_ref().map_or(first.at.clone(), Name::span);
                        return Err(self.error(
                            span,
                            RulesErrorKind::Cycle,
                            format!("inherits cycle: {}", cycle.join(" -> ")),
                        ));
                    }
                    chain.push(next.clone());
                }
            }
            // An owner kept out of the field by [systems.only] could never win it.
            if let Some((system, _)) = &owner
                && let Some(allowed) = only.get(system)
            {
                let fields = groups
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| vec![name.clone()]);
                if let Some(field) = fields.iter().find(|f| !allowed.contains(*f)) {
                    let rule = &own[name];
                    return Err(self.error(
                        rule.owner_at.clone().unwrap_or(rule.at.clone()),
                        RulesErrorKind::Invalid,
                        format!(
                            "rules.{name}: owner {system} may not write {field:?} (systems.only)"
                        ),
                    ));
                }
            }
            rules.insert(
                name.clone(),
                Resolved {
                    owner,
                    strategies,
                    values,
                },
            );
        }

        let primary = self.primary(&raw.primary, &known_system)?;

        Ok(Rules {
            origin: self.origin.to_string(),
            ranking,
            ranking_at: Position::of(self.text, raw.systems.ranking.span().start),
            only,
            read_only,
            groups,
            group_of,
            formats,
            default,
            values,
            rules,
            primary,
        })
    }

    /// The value-policy keys a table sets; `max_chars` must leave room for a value.
    fn value_keys(&self, raw: &RawValues, what: &str) -> Result<ValueKeys, RulesError> {
        let max_chars = match &raw.max_chars {
            None => None,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    return Err(self.error(
                        n.span(),
                        RulesErrorKind::Invalid,
                        format!("{what}.max_chars must be at least 1 (got {})", n.get_ref()),
                    ));
                }
            },
        };
        Ok(ValueKeys {
            max_chars,
            trim: raw.trim,
            collapse_spaces: raw.collapse_spaces,
            line_breaks: raw.line_breaks,
        })
    }

    fn ranking(&self, list: &NameList) -> Result<Vec<String>, RulesError> {
        if list.get_ref().is_empty() {
            return Err(self.error(
                list.span(),
                RulesErrorKind::Invalid,
                "systems.ranking must name at least one system".to_string(),
            ));
        }
        let mut seen = Vec::new();
        for name in list.get_ref() {
            if seen.contains(name.get_ref()) {
                return Err(self.duplicate(name, "systems.ranking"));
            }
            seen.push(name.get_ref().clone());
        }
        Ok(seen)
    }

    fn strategies(&self, list: &NameList, what: &str) -> Result<Vec<Strategy>, RulesError> {
        if list.get_ref().is_empty() {
            return Err(self.error(
                list.span(),
                RulesErrorKind::Invalid,
                format!("{what} must name at least one strategy"),
            ));
        }
        let mut out = Vec::new();
        for name in list.get_ref() {
            let strategy = Strategy::parse(name.get_ref()).ok_or_else(|| {
                self.error(
                    name.span(),
                    RulesErrorKind::UnknownStrategy,
                    format!(
                        "unknown strategy {:?} in {what} (known: {})",
                        name.get_ref(),
                        Strategy::ALL.map(Strategy::as_str).join(", ")
                    ),
                )
            })?;
            if out.contains(&strategy) {
                return Err(self.duplicate(name, what));
            }
            out.push(strategy);
        }
        Ok(out)
    }

    fn primary(
        &self,
        raw: &RawPrimary,
        known_system: &dyn Fn(&Name, &str) -> Result<String, RulesError>,
    ) -> Result<PrimaryRule, RulesError> {
        let system = match &raw.system {
            Some(s) => Some(known_system(s, "primary.system")?),
            None => None,
        };
        if raw.rule.get_ref().is_empty() {
            return Err(self.error(
                raw.rule.span(),
                RulesErrorKind::Invalid,
                "primary.rule must name at least one criterion".to_string(),
            ));
        }
        let mut chain = Vec::new();
        for name in raw.rule.get_ref() {
            let step = PrimaryStrategy::parse(name.get_ref()).ok_or_else(|| {
                self.error(
                    name.span(),
                    RulesErrorKind::UnknownStrategy,
                    format!(
                        "unknown primary criterion {:?} (known: {})",
                        name.get_ref(),
                        PrimaryStrategy::ALL.map(PrimaryStrategy::as_str).join(", ")
                    ),
                )
            })?;
            if chain.contains(&step) {
                return Err(self.duplicate(name, "primary.rule"));
            }
            if step == PrimaryStrategy::SystemOfRecord && system.is_none() {
                return Err(self.error(
                    name.span(),
                    RulesErrorKind::Invalid,
                    "system_of_record needs primary.system".to_string(),
                ));
            }
            chain.push(step);
        }
        Ok(PrimaryRule { system, chain })
    }

    fn duplicate(&self, name: &Name, what: &str) -> RulesError {
        self.error(
            name.span(),
            RulesErrorKind::Duplicate,
            format!("{:?} appears twice in {what}", name.get_ref()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let rules = Rules::parse(DEFAULT_RULES, DEFAULT_ORIGIN).unwrap();
        assert_eq!(rules.ranking(), ["erp", "crm", "marketing"]);
        let email = rules.policy("email");
        assert_eq!(email.owner.as_deref(), Some("crm"));
        assert_eq!(email.owner_scope, "identity");
        assert_eq!(email.format, Some(Format::Email));
        let city = rules.policy("city");
        assert_eq!(city.owner.as_deref(), Some("erp"));
        assert!(rules.is_read_only("hs_object_id"));
        assert!(!rules.may_write("marketing", "city"));
        assert!(rules.may_write("marketing", "lifecyclestage"));
        assert!(rules.may_write("crm", "city"));
    }

    #[test]
    fn a_field_rule_inherits_its_groups_owner() {
        let rules = Rules::parse(DEFAULT_RULES, DEFAULT_ORIGIN).unwrap();
        let p = rules.policy("jobtitle");
        assert_eq!(p.owner.as_deref(), Some("crm"));
        assert_eq!(p.owner_scope, "identity");
        assert_eq!(p.strategies, [Strategy::MostRecent, Strategy::Longest]);
    }

    #[test]
    fn unnamed_fields_get_the_default_list() {
        let rules = Rules::parse(DEFAULT_RULES, DEFAULT_ORIGIN).unwrap();
        let p = rules.policy("favourite_colour");
        assert_eq!(p.owner, None);
        assert_eq!(
            p.strategies,
            [
                Strategy::MostRecent,
                Strategy::MostComplete,
                Strategy::FromPrimary
            ]
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a\nbé = 1\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 2), Position { line: 2, column: 1 });
        // "é" is two bytes but one column.
        assert_eq!(Position::of(text, 5), Position { line: 2, column: 3 });
    }

    #[test]
    fn the_default_ranks_every_configured_source() {
        let config = crate::config::load(&crate::config::Sources::default()).unwrap();
        let rules = Rules::parse(DEFAULT_RULES, DEFAULT_ORIGIN).unwrap();
        rules.check_sources(&config.sources).unwrap();
    }
}
