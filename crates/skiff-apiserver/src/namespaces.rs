//! Which namespaces exist and which are terminating, followed through the watch cache so that
//! creates do not read the store to check their namespace.

use crate::follow::Followed;
use serde_json::Value;

pub const NAMESPACE_PREFIX: &str = "/registry/core/namespaces/";

/// The namespaces that may not be deleted (upstream's NamespaceLifecycle admission).
pub const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

/// What the cache knows of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Terminating,
}

pub type Namespaces = Followed<State>;

/// A namespace's name and state, for [`Followed`].
pub fn extract(ns: &Value) -> Option<(String, State)> {
    let name = ns.pointer("/metadata/name").and_then(Value::as_str)?;
    let state = if ns.pointer("/metadata/deletionTimestamp").is_some()
        || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    {
        State::Terminating
    } else {
        State::Active
    };
    Some((name.to_string(), state))
}
