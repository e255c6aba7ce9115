//! dupdesk: review candidate duplicate CRM records from the keyboard, execute the approved
//! merges through the CRM's own merge API, keep the cross-system id mapping right, and record
//! every decision.
//!
//! ```text
//!  CRM API / CSV export ──pull──▶ records ──matcher──▶ clusters ──TUI review──▶ decisions
//!         ▲                        (SQLite workspace: one file, WAL)               │
//!         │                                                                        ▼
//!         └──────────── merge calls, field PATCH ◀── executor (journal) ◀── approved decisions
//!                                                         │
//!                                                         ├──▶ id_mapping updates
//!                                                         └──▶ decision log export
//! ```
//!
//! The layers, from the bottom up:
//!
//! - [`model`]: plain serde data (records with per-property history, object types).
//! - [`config`]: layered TOML configuration and secrets.
//! - [`store`]: the SQLite workspace, owned by one thread that async code sends closures to.
//! - [`crm`]: the `Connector` trait, its HubSpot implementation, rate limiting and retries.
//! - [`sandbox`]: a HubSpot-compatible CRM on loopback, for the demo and the tests.
//! - [`demo`]: the seeded generator of realistic records with planted duplicates.
//! - [`import`]: records from a CRM's CSV export.
//! - [`input`]: files a user hands dupdesk, read within fixed bounds, and the ids in them checked.
//! - [`matcher`]: normalization, blocking, scoring and clustering of candidate duplicates.
//! - [`precedence`]: which value survives per field, which record is primary, and why; junk
//!   values set aside and the survivor's whitespace normalized.
//! - [`diff`]: field- and character-level differences between records.
//! - [`review`]: the review draft, the one way a decision about a cluster is built (what can
//!   be chosen, what exclusion does, what is checked before an approval).
//! - [`plan`]: the checks a merge plan passes before its first irreversible call.
//! - [`approve`]: bulk approval of high-confidence clusters by rule, as ordinary decisions.
//! - [`executor`]: approved decisions executed as journaled CRM merges, exactly once.
//! - [`export`], [`lineage`], [`stats`]: the decision log, where a record's data came from,
//!   and health figures.
//! - [`sanitize`]: untrusted record values made safe for a terminal: controls, invisible and
//!   text-moving characters shown as escapes, in text and in JSON.
//! - [`sync`]: pulling records from a CRM into the workspace.
//! - [`tui`]: the review terminal UI (ratatui + crossterm), a view over the layers above.
//! - [`cli`]: the command line; every arrow above can be run from it by itself.
//!
//! Nothing below `cli` knows about the terminal.
//!
//! The process allocator is mimalloc, set here so that the binary, the tests and the benchmarks
//! all measure the same thing: the matcher normalizes on rayon workers while the main thread
//! streams records in, and glibc's malloc spent most of a 1M-record run consolidating and
//! unlinking chunks freed across threads.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod approve;
pub mod cli;
pub mod config;
pub mod crm;
pub mod demo;
pub mod diff;
pub mod executor;
pub mod export;
pub mod import;
pub mod input;
pub mod lineage;
pub mod logging;
pub mod matcher;
pub mod model;
pub mod plan;
pub mod precedence;
pub mod review;
pub mod sandbox;
pub mod sanitize;
pub mod stats;
pub mod store;
pub mod sync;
pub mod tui;
pub mod words;
