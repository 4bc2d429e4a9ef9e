//! The resource registry, validation, defaulting, selectors, patch and Status errors: no IO.

pub mod registry;
