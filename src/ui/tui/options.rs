//! The settings the review takes from the configuration, checked before the terminal is
//! touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use super::keymap::Keymap;
use super::theme::Palette;
use crate::config::{Config, SourcesConfig, ThemeSetting};
use crate::domain::model::ObjectType;
use crate::domain::precedence::Rules;

#[derive(Debug, Clone)]
pub struct Options {
    pub steward: String,
    pub sources: SourcesConfig,
    pub properties: BTreeMap<ObjectType, Vec<String>>,
    pub keymap: Keymap,
    /// Which value survives per field, and which record is primary.
    pub rules: Arc<Rules>,
    /// Colour off (`NO_COLOR`): differences are shown by markers and modifiers only.
    pub no_color: bool,
    /// The colours, for a dark or a light background (`[ui] theme`, "auto" resolved).
    pub palette: Palette,
    /// The queue's flags: weak below this weakest-pair score, large above this size.
    pub weak_below: f64,
    pub large_above: u32,
    /// Asks the review's background task to run the approved merges (the same executor as
    /// `dupdesk apply`); `None` where no such task runs.
    pub apply: Option<mpsc::UnboundedSender<()>>,
    /// `A` asks before it runs the merges (`review.confirm_apply`).
    pub confirm_apply: bool,
    /// Which property holds the other system's id.
    pub mapping: crate::config::MappingConfig,
}

impl Options {
    /// The options of `config`; a bad `[keys]` entry or rules file is refused here, before
    /// the terminal is touched.
    pub fn from_config(config: &Config) -> Result<Options> {
        Ok(Options {
            steward: config.workspace.steward.clone(),
            sources: config.sources.clone(),
            properties: ObjectType::ALL
                .into_iter()
                .map(|t| (t, config.properties(t)))
                .collect(),
            keymap: Keymap::new(&config.keys).context("the [keys] section of the configuration")?,
            rules: Arc::new(Rules::for_config(config)?),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            palette: match config.ui.theme {
                ThemeSetting::Dark => Palette::Dark,
                ThemeSetting::Light => Palette::Light,
                ThemeSetting::Auto => {
                    Palette::from_colorfgbg(std::env::var("COLORFGBG").ok().as_deref())
                }
            },
            weak_below: config.ui.weak_below,
            large_above: config.ui.large_above,
            apply: None,
            confirm_apply: config.review.confirm_apply,
            mapping: config.mapping.clone(),
        })
    }
}
