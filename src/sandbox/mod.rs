//! placeholder
pub mod seed;
