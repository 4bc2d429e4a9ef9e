//! Patching and applying: JSON patch, JSON merge patch, strategic merge patch, kubectl's
//! three-way merge for client-side apply, and server-side apply with managed fields.
//!
//! Everything here is a pure function on [`serde_json::Value`].

mod apply;
mod fieldpath;
mod merge;
mod schema;
#[rustfmt::skip]
mod schema_table;
mod strategic;
mod three_way;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use apply::{
    ApplyError, Conflict, FieldManager, ManagedFieldsEntry, server_side_apply,
    update_managed_fields,
};
pub use fieldpath::{FieldSet, PathElement, format_path};
pub use merge::{json_patch, merge_patch};
pub use schema::{CustomSchema, ListStrategy, Schema, list_strategy};
pub use strategic::strategic_merge_patch;
pub use three_way::three_way_merge;

/// Why a patch could not be applied. The API server answers 400 or 422 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON patch (RFC 6902) document.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// An operation of a JSON patch failed (a missing path, a failed `test`).
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatchFailed(String),
    /// A strategic merge patch is malformed: a bad directive, a missing merge key, a value of
    /// the wrong type.
    #[error("invalid strategic merge patch: {0}")]
    InvalidStrategicPatch(String),
}
