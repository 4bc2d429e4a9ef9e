//! The resources the server serves, found through discovery so that custom resources count too.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope, verbs};

/// One served resource in its preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub list_watch: bool,
    pub delete: bool,
    pub deletecollection: bool,
}

impl Resource {
    /// `plural.group`, or `plural` in the core group: the name kubectl and upstream messages use.
    pub fn id(&self) -> String {
        if self.ar.group.is_empty() {
            self.ar.plural.clone()
        } else {
            format!("{}.{}", self.ar.plural, self.ar.group)
        }
    }

    /// The API for objects of this resource, in `namespace` when the resource is namespaced.
    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if self.namespaced => Api::namespaced_with(client.clone(), ns, &self.ar),
            _ => Api::all_with(client.clone(), &self.ar),
        }
    }
}

/// Every resource the server serves, in its group's preferred version (aggregated discovery).
pub async fn discover(client: &kube::Client) -> Result<Vec<Resource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            out.push(Resource {
                namespaced: caps.scope == Scope::Namespaced,
                list_watch: caps.supports_operation(verbs::LIST)
                    && caps.supports_operation(verbs::WATCH),
                delete: caps.supports_operation(verbs::DELETE),
                deletecollection: caps.supports_operation(verbs::DELETE_COLLECTION),
                ar,
            });
        }
    }
    Ok(out)
}

/// The resource an ownerReference's `apiVersion` and `kind` name: the same group and kind,
/// preferring the same version (the server converts between versions of one resource).
pub fn find_kind<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
    api_version: &str,
    kind: &str,
) -> Option<&'a Resource> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let mut best = None;
    for r in resources {
        if r.ar.group == group && r.ar.kind == kind {
            if r.ar.version == version {
                return Some(r);
            }
            best.get_or_insert(r);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, kind: &str, plural: &str) -> Resource {
        Resource {
            ar: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: if group.is_empty() {
                    version.into()
                } else {
                    format!("{group}/{version}")
                },
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: true,
            list_watch: true,
            delete: true,
            deletecollection: true,
        }
    }

    #[test]
    fn finds_the_kind_of_an_owner_reference() {
        let rs = [
            res("", "v1", "ConfigMap", "configmaps"),
            res("apps", "v1", "Deployment", "deployments"),
            res(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
        ];
        assert_eq!(
            find_kind(&rs, "v1", "ConfigMap").map(Resource::id),
            Some("configmaps".into())
        );
        assert_eq!(
            find_kind(&rs, "apps/v1", "Deployment").map(Resource::id),
            Some("deployments.apps".into())
        );
        // Another version of a served resource resolves to the served one.
        assert_eq!(
            find_kind(&rs, "autoscaling/v1", "HorizontalPodAutoscaler")
                .map(|r| r.ar.version.clone()),
            Some("v2".into())
        );
        assert!(find_kind(&rs, "apps/v1", "ConfigMap").is_none());
        assert!(find_kind(&rs, "example.com/v1", "Widget").is_none());
    }
}
