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
//! The folders are the floors, from the bottom up (ARCHITECTURE.md states the rules that keep
//! them so):
//!
//! - [`domain`]: plain data and the pure rules: records, diffs, precedence, the matcher's
//!   algorithms, sanitizing untrusted values.
//! - [`config`]: layered TOML configuration and secrets; [`input`]: files a user hands
//!   dupdesk, read within fixed bounds; [`logging`].
//! - [`store`]: the SQLite workspace, owned by one thread that async code sends closures to;
//!   every SQL statement, and the cluster workflow.
//! - [`crm`]: the `Connector` trait, its HubSpot implementation, rate limiting and retries.
//! - [`ops`]: the use cases (pull, import, matching, review, plan, approve, apply, export,
//!   lineage, stats).
//! - [`ui`]: the front ends, the command line and the review TUI.
//! - [`harness`]: the sandbox CRM and the demo generator, for the demo and the tests.
//!
//! Nothing below `ui` knows about the terminal.
//!
//! The process allocator is mimalloc, set here so that the binary, the tests and the benchmarks
//! all measure the same thing: the matcher normalizes on rayon workers while the main thread
//! streams records in, and glibc's malloc spent most of a 1M-record run consolidating and
//! unlinking chunks freed across threads.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod config;
pub mod crm;
pub mod domain;
mod floors;
pub mod harness;
pub mod input;
pub mod logging;
pub mod ops;
pub mod store;
pub mod ui;
