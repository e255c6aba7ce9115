//! The front ends. They parse, draw and print, and call the use cases in [`crate::ops`]; they
//! make no rule of their own about what may be merged. ratatui and crossterm are used only
//! here.
//!
//! - [`cli`]: the command line; every arrow of the flow can be run from it by itself.
//! - [`tui`]: the review terminal UI (ratatui + crossterm).

pub mod cli;
pub mod tui;
