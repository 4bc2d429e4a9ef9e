//! The resource registry, validation, defaulting, selectors, patch and Status errors: no IO.

pub mod convert;
pub mod cron;
pub mod defaults;
pub mod duration;
pub mod events;
pub mod gojson;
pub mod limitrange;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod registry;
pub mod selector;
pub mod status;
pub mod validation;
