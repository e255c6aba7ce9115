//! What the demo and the tests run against, beside the product: production code reaches the
//! sandbox only through its URL, as it would a real CRM (the CLI's `sandbox` and `demo`
//! commands start it).
//!
//! - [`sandbox`]: a HubSpot-compatible CRM on loopback, as strict as HubSpot, with faults.
//! - [`demo`]: the seeded generator of realistic records with planted duplicates.

pub mod demo;
pub mod sandbox;
