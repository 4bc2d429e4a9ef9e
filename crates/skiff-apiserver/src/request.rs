//! Turns a request path into what it addresses: discovery, a collection, an object or a subresource.

use crate::crd::Resources;
use skiff_api::registry::ResourceInfo;

/// What a resource path names.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRequest {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_path: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Version,
    /// `/healthz`, `/livez` or `/readyz`, or one of their checks (`/livez/etcd`).
    Health(&'static str, Option<String>),
    Metrics,
    /// `/cacerts`: the cluster CA, for agents that pin it by the join token's hash.
    CaCerts,
    /// `/.well-known/openid-configuration`: service account issuer discovery.
    OpenIdConfiguration,
    /// `/openid/v1/jwks`: the keys service account tokens are signed with.
    OpenIdKeys,
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList {
        group: String,
        version: String,
    },
    Resource(ResourceRequest),
    /// `/apis/metrics.k8s.io/v1beta1/{rest}`, served by `metrics_api`.
    MetricsApi(String),
    NotFound,
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

pub fn route(path: &str, resources: &Resources) -> Route {
    let seg = segments(path);
    match seg.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] => Route::Health("healthz", None),
        ["livez"] => Route::Health("livez", None),
        ["readyz"] => Route::Health("readyz", None),
        ["healthz", check] => Route::Health("healthz", Some(check.to_string())),
        ["livez", check] => Route::Health("livez", Some(check.to_string())),
        ["readyz", check] => Route::Health("readyz", Some(check.to_string())),
        ["metrics"] => Route::Metrics,
        ["cacerts"] => Route::CaCerts,
        [".well-known", "openid-configuration"] => Route::OpenIdConfiguration,
        ["openid", "v1", "jwks"] => Route::OpenIdKeys,
        ["openapi", "v2"] | ["swagger.json"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", "v1"] => Route::ResourceList {
            group: String::new(),
            version: "v1".into(),
        },
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version] => Route::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        },
        [
            "apis",
            crate::metrics_api::GROUP,
            crate::metrics_api::VERSION,
            rest @ ..,
        ] => Route::MetricsApi(rest.join("/")),
        ["api", "v1", rest @ ..] => resource(resources, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource(resources, group, version, rest),
        _ => Route::NotFound,
    }
}

fn resource(resources: &Resources, group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let lookup = |plural: &str| resources.find(group, version, plural);
    // namespaces/{ns}/{plural}/... addresses namespaced resources, except the namespace object itself.
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|i| i.namespaced) => {
            match tail {
                [] => (Some(*ns), *plural, None, None),
                [name] => (Some(*ns), *plural, Some(*name), None),
                [name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
                _ => return Route::NotFound,
            }
        }
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        _ => return Route::NotFound,
    };
    let Some(info) = lookup(plural) else {
        return Route::NotFound;
    };
    // A cluster-scoped path to a namespaced resource is only a list/watch across namespaces.
    if info.namespaced && namespace.is_none() && name.is_some() {
        return Route::NotFound;
    }
    if !info.namespaced && namespace.is_some() {
        return Route::NotFound;
    }
    Route::Resource(ResourceRequest {
        info,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        watch_path,
    })
}
