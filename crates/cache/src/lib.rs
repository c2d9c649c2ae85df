//! Alpha Panda cache: the dedup store (ARCHITECTURE §4 rule 3) over Redis or in memory, chosen by URL.
//!
//! # Layout
//! - `error`: [`CacheError`], the crate's one error type, each variant knowing its class.
//! - `dedup`: [`Dedup`], the `DedupStore` port over `memory://` or `redis://`.
#![deny(unsafe_code)]

mod dedup;
mod error;

pub use dedup::{Dedup, DEFAULT_PREFIX};
pub use error::CacheError;
