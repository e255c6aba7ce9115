//! Plain data and the pure rules over it: what a record is, how two records differ, which
//! value survives a merge, how candidate duplicates are found. No SQL, no HTTP, no terminal:
//! everything here is a function of its arguments (the matcher's runs, which read and write
//! the workspace, are [`crate::ops`]).
//!
//! - [`model`]: plain serde data (records with per-property history, object types).
//! - [`diff`]: field- and character-level differences between records.
//! - [`precedence`]: which value survives per field, which record is primary, and why; junk
//!   values set aside and the survivor's whitespace normalized.
//! - [`matcher`]: normalization, blocking, scoring and clustering of candidate duplicates.
//! - [`plan`]: the checks a merge plan passes before its first irreversible call (values the
//!   CRM would refuse, read-only and unique properties), and the update an approval sends.
//! - [`sanitize`]: untrusted record values made safe for a terminal: controls, invisible and
//!   text-moving characters shown as escapes, in text and in JSON.
//! - [`words`]: counted nouns for messages ("1 cluster", "2 clusters").

pub mod diff;
pub mod matcher;
pub mod model;
pub mod plan;
pub mod precedence;
pub mod sanitize;
pub mod words;
