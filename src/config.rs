//! Layered configuration: the embedded default (`assets/default-config.toml`) < the user file <
//! `DUPDESK_<SECTION>__<KEY>` environment variables < command-line flags. Layers are merged
//! as TOML tables and then checked once against [`Config`], so an unknown key or a wrong type
//! is refused with the layer and key it came from. Secrets are held in [`Secret`], whose
//! `Debug` and `Display` never show the value.

pub mod matcher;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = include_str!("../assets/default-config.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub workspace: WorkspaceConfig,
    pub crm: CrmConfig,
    pub objects: BTreeMap<String, ObjectConfig>,
    pub mapping: MappingConfig,
    pub sources: SourcesConfig,
    pub logging: LoggingConfig,
    /// Review keys: command name -> keys, replacing that command's default keys.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub precedence: PrecedenceConfig,
    pub import: ImportConfig,
    #[serde(default)]
    pub pull: PullConfig,
    /// The matcher: thresholds and the field schema per object type.
    #[serde(default)]
    pub matcher: matcher::MatcherSettings,
    #[serde(default)]
    pub review: ReviewConfig,
    /// How the review screens look.
    #[serde(default)]
    pub ui: UiConfig,
}

/// The review screens' look: the colour theme and when the queue flags a cluster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    #[serde(default)]
    pub theme: ThemeSetting,
    /// The queue flags a cluster weak when its weakest pair scores below this.
    #[serde(default = "weak_below")]
    pub weak_below: f64,
    /// The queue flags a cluster large when it has more records than this.
    #[serde(default = "large_above")]
    pub large_above: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: ThemeSetting::default(),
            weak_below: weak_below(),
            large_above: large_above(),
        }
    }
}

fn weak_below() -> f64 {
    0.9
}

fn large_above() -> u32 {
    5
}

/// `[ui] theme`: colours for a dark or a light background, or chosen from `COLORFGBG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThemeSetting {
    #[default]
    Auto,
    Dark,
    Light,
}

/// The review screen's settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// `A` says how many clusters and CRM calls it will run and waits for `y`.
    #[serde(default = "yes")]
    pub confirm_apply: bool,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            confirm_apply: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Share (0.02 = 2%) by which the record count may move between two pulls before `stats`
    /// raises an alert.
    pub record_count_change: f64,
    /// Change of the candidate duplicate rate between two pulls, in absolute terms (0.02 = two
    /// percentage points), above which `stats` raises an alert.
    pub duplicate_rate_change: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    pub path: PathBuf,
    pub steward: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmKind {
    Hubspot,
    Sandbox,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    pub kind: CrmKind,
    pub base_url: String,
    pub token_env: String,
    #[serde(default, skip_serializing)]
    pub token: Option<Secret>,
    pub rate_limit: u32,
    pub rate_interval_ms: u64,
    pub max_retries: u32,
    pub timeout_secs: u64,
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectConfig {
    pub properties: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    pub inverse_id_property: String,
    pub other_system: String,
    /// What a merge writes into the inverse-id property when its records map to different
    /// ids in the other system: `keep` leaves what the merge left (the primary's), `clear`
    /// empties it. Either way the conflict is the steward's to settle.
    #[serde(default)]
    pub on_conflict: OnConflict,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    #[default]
    Keep,
    Clear,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    pub default_system: String,
    pub rules: Vec<SourceRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRule {
    pub source_type: String,
    #[serde(default)]
    pub source_id: Option<String>,
    pub system: String,
}

/// Where the precedence rules come from (see `crate::domain::precedence::Rules`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrecedenceConfig {
    /// A rules file that replaces the embedded default as a whole; empty for the default.
    #[serde(default)]
    pub rules: PathBuf,
}

/// `dupdesk pull`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// The next incremental pull asks for records modified since this many seconds before
    /// the last pull started: HubSpot's search index lags writes, and this machine's clock
    /// may differ from HubSpot's. What the window reads again and the workspace holds already
    /// is not read with history nor written.
    #[serde(default = "default_lookback")]
    pub lookback_seconds: u64,
}

fn default_lookback() -> u64 {
    300
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            lookback_seconds: default_lookback(),
        }
    }
}

/// `dupdesk import`: CSV headers → property names, beyond the built-in HubSpot export headers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub dir: String,
    pub level: String,
}

/// A secret string (an API token). Shows as `***` everywhere it could be printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SourcesConfig {
    /// The source system that wrote a value with this history `sourceType` and `sourceId`.
    pub fn system_for(&self, source_type: &str, source_id: Option<&str>) -> &str {
        self.rules
            .iter()
            .find(|r| {
                r.source_type.eq_ignore_ascii_case(source_type)
                    && r.source_id
                        .as_deref()
                        .is_none_or(|want| Some(want) == source_id)
            })
            .map(|r| r.system.as_str())
            .unwrap_or(&self.default_system)
    }
}

impl Config {
    /// The properties configured for an object type.
    pub fn properties(&self, object: crate::domain::model::ObjectType) -> Vec<String> {
        self.objects
            .get(object.as_str())
            .map(|o| o.properties.clone())
            .unwrap_or_default()
    }

    /// The CRM token: the environment variable named by `crm.token_env`, else `crm.token` from
    /// a user file that only its owner can read.
    pub fn token(&self) -> Option<Secret> {
        std::env::var(&self.crm.token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(Secret)
            .or_else(|| self.crm.token.clone())
    }

    /// Where dupdesk.log goes.
    pub fn log_dir(&self) -> PathBuf {
        if !self.logging.dir.is_empty() {
            return PathBuf::from(&self.logging.dir);
        }
        directories::ProjectDirs::from("", "", "dupdesk")
            .map(|d| d.data_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".dupdesk"))
    }
}

/// Where the layers come from. `overrides` are flag values as (dotted key, value).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub overrides: Vec<(String, toml::Value)>,
}

impl Sources {
    /// The user file: `--config`, else `./dupdesk.toml`, else the XDG config file, if present.
    pub fn discover(explicit: Option<&Path>) -> Sources {
        let file = explicit.map(Path::to_path_buf).or_else(|| {
            let local = PathBuf::from("dupdesk.toml");
            if local.is_file() {
                return Some(local);
            }
            directories::ProjectDirs::from("", "", "dupdesk")
                .map(|d| d.config_dir().join("config.toml"))
                .filter(|p| p.is_file())
        });
        Sources {
            file,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("DUPDESK_") && k.contains("__"))
                .collect(),
            overrides: Vec::new(),
        }
    }
}

/// Build the configuration from its layers.
pub fn load(sources: &Sources) -> Result<Config> {
    let mut merged: toml::Table =
        toml::from_str(DEFAULT_CONFIG).context("the embedded default configuration")?;
    if let Some(path) = &sources.file {
        // Read whole to be parsed, so capped: a config file is a few KiB.
        let text = crate::input::read_small_text(path, crate::input::MAX_TOML_BYTES)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let user: toml::Table = toml::from_str(&text).map_err(|e| {
            // One line, without the snippet of the file toml's own message draws.
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = text.get(..at).unwrap_or_default();
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            anyhow!(
                "config file {}, line {}, column {}: {}",
                path.display(),
                before.matches('\n').count() + 1,
                before.get(line_start..).map_or(0, |s| s.chars().count()) + 1,
                crate::input::excerpt(e.message().trim(), crate::input::MESSAGE_CHARS)
            )
        })?;
        if user.get("crm").and_then(|c| c.get("token")).is_some() {
            check_private(path)?;
        }
        merge(&mut merged, user);
    }
    for (name, raw) in &sources.env {
        let Some(key) = name.strip_prefix("DUPDESK_") else {
            continue;
        };
        let path: Vec<String> = key.split("__").map(|s| s.to_ascii_lowercase()).collect();
        set_path(&mut merged, &path, parse_env_value(raw))
            .with_context(|| format!("environment variable {name}"))?;
    }
    for (key, value) in &sources.overrides {
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        set_path(&mut merged, &path, value.clone())?;
    }
    let origin = sources
        .file
        .as_ref()
        .map(|p| format!("config file {} (with defaults, env and flags)", p.display()))
        .unwrap_or_else(|| "configuration (defaults, env and flags)".to_string());
    let config: Config = toml::Value::Table(merged).try_into().map_err(|e| {
        anyhow!(
            "{origin}: {}",
            crate::input::excerpt(&e.to_string(), crate::input::MESSAGE_CHARS)
        )
    })?;
    validate(&config)?;
    Ok(config)
}

fn validate(config: &Config) -> Result<()> {
    if config.crm.rate_limit == 0 || config.crm.rate_interval_ms == 0 {
        bail!("crm.rate_limit and crm.rate_interval_ms must be above 0");
    }
    if !(1..=100).contains(&config.crm.page_size) {
        bail!("crm.page_size must be between 1 and 100 (HubSpot's maximum)");
    }
    for name in config.objects.keys() {
        name.parse::<crate::domain::model::ObjectType>()
            .map_err(|e| anyhow!("[objects.{name}]: {e}"))?;
    }
    Ok(())
}

/// A token in a file that others can read is refused: the file must be chmod 600.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "config file {} holds crm.token but is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| anyhow!("empty configuration key"))?;
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("configuration key {p} is not a section"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

/// An environment value is read as a TOML value when it is one (`190`, `true`, `["a"]`) and as a
/// string otherwise.
fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_loads() {
        let c = load(&Sources::default()).unwrap();
        assert_eq!(c.crm.kind, CrmKind::Hubspot);
        assert_eq!(c.crm.rate_limit, 100);
        assert!(
            c.properties(crate::domain::model::ObjectType::Contacts)
                .contains(&"email".to_string())
        );
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[crm]\nrate_limit = 190\nbase_url = \"http://file\"\n",
        )
        .unwrap();
        let sources = Sources {
            file: Some(file),
            env: vec![("DUPDESK_CRM__BASE_URL".into(), "http://env".into())],
            overrides: vec![("workspace.path".into(), toml::Value::String("x.db".into()))],
        };
        let c = load(&sources).unwrap();
        assert_eq!(c.crm.rate_limit, 190);
        assert_eq!(c.crm.base_url, "http://env");
        assert_eq!(c.workspace.path, PathBuf::from("x.db"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[crm]\nrate_limt = 190\n").unwrap();
        let err = load(&Sources {
            file: Some(file),
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("rate_limt"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    const MAX: usize = crate::input::MAX_TOML_BYTES as usize;

    #[test]
    fn a_broken_file_is_one_line_naming_line_and_column_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let long = "x".repeat(100_000);
        std::fs::write(&file, format!("[crm]\nbase_url = \"{long}\n")).unwrap();
        let err = load(&Sources {
            file: Some(file.clone()),
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("c.toml, line 2, column"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.len() < 600, "{} bytes", err.len());
        // Over the cap, refused before it is parsed.
        std::fs::write(&file, vec![b'#'; MAX + 1]).unwrap();
        let err = load(&Sources {
            file: Some(file),
            ..Sources::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("1048577 bytes"), "{err:#}");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_in_a_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[crm]\ntoken = \"pat-secret\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let sources = Sources {
            file: Some(file.clone()),
            ..Sources::default()
        };
        let err = load(&sources).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("pat-secret"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = load(&sources).unwrap();
        assert_eq!(format!("{:?}", c.crm.token), "Some(Secret(***))");
    }

    #[test]
    fn source_rules_pick_the_first_match() {
        let c = load(&Sources::default()).unwrap();
        assert_eq!(c.sources.system_for("INTEGRATION", Some("erp-sync")), "erp");
        assert_eq!(c.sources.system_for("FORM", None), "marketing");
        assert_eq!(c.sources.system_for("API", None), "crm");
    }
}
