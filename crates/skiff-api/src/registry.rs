//! Every resource the API server serves: group, version, kind, plural, scope, verbs, subresources.

/// One served resource (one group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural used in URLs, e.g. "deployments".
    pub plural: &'static str,
    /// Lower-case singular, e.g. "deployment".
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Verbs as discovery reports them.
    pub verbs: &'static [&'static str],
    /// Has a `status` subresource.
    pub status: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale).
    pub scale: bool,
    /// The version objects are stored in; requests in other versions are converted.
    pub storage_version: bool,
}

impl ResourceInfo {
    /// "apps/v1", or "v1" for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Verbs of an ordinary read-write resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
