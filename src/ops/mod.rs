//! The use cases: each is one arrow of the flow, run by a command of its own and by the TUI
//! alike. They read and write the workspace only through [`crate::store`], talk to a CRM only
//! through [`crate::crm::Connector`], and know nothing about the terminal.
//!
//! - [`sync`]: pulling records from a CRM into the workspace.
//! - [`import`]: records from a CRM's CSV export.
//! - [`matching`]: a matcher run over the workspace (what to read, what changed, which
//!   clusters to write, keep or send back); [`external_clusters`]: an external matcher's
//!   clusters read into the workspace.
//! - [`review`]: the review draft, the one way a decision about a cluster is built (what can
//!   be chosen, what exclusion does, what is checked before an approval).
//! - [`approve`]: bulk approval of high-confidence clusters by rule, as ordinary decisions.
//! - [`executor`]: approved decisions executed as journaled CRM merges, exactly once.
//! - [`export`], [`lineage`], [`stats`]: the decision log, where a record's data came from,
//!   and health figures.

pub mod approve;
pub mod executor;
pub mod export;
pub mod external_clusters;
pub mod import;
pub mod lineage;
pub mod matching;
pub mod review;
pub mod stats;
pub mod sync;
