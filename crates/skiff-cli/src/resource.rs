//! What the user typed (`po`, `deploy`, `deployments.apps`, a manifest's apiVersion and kind)
//! to a resource and its URLs: the built-ins from the registry, custom resources from CRDs.

use serde_json::Value;
use skiff_api::patch::Schema;
use skiff_api::registry::{self, ResourceInfo};

use crate::client::Api;
use crate::{CliError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// Built in (known to the registry); custom resources patch with JSON merge patches.
    pub builtin: bool,
}

impl Resource {
    fn from_info(r: &ResourceInfo) -> Resource {
        Resource {
            group: r.group.into(),
            version: r.version.into(),
            kind: r.kind.into(),
            plural: r.plural.into(),
            namespaced: r.namespaced,
            builtin: true,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection URL; `ns` is ignored for cluster-scoped resources, `None` lists all.
    pub fn collection_path(&self, ns: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match ns {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    pub fn object_path(&self, ns: &str, name: &str) -> String {
        format!("{}/{name}", self.collection_path(Some(ns)))
    }

    /// `deployment.apps` or `pod`: the prefix of `-o name` and of kubectl's status lines.
    pub fn name_prefix(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// `deployments.apps` or `pods`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn schema(&self) -> Schema {
        if self.builtin {
            Schema::for_kind(&self.group, &self.kind)
        } else {
            Schema::unknown()
        }
    }
}

/// Resolves a resource type as kubectl does: `TYPE`, `TYPE.GROUP` or `TYPE.VERSION.GROUP`,
/// where TYPE is a plural, singular, short name or kind.
pub async fn resolve(api: &Api, typed: &str) -> Result<Resource> {
    if let Some(r) = resolve_builtin(typed) {
        return Ok(r);
    }
    resolve_custom(api, typed).await?.ok_or_else(|| {
        CliError::client(format!(
            "the server doesn't have a resource type \"{typed}\""
        ))
    })
}

fn matches_name(r: &ResourceInfo, name: &str) -> bool {
    r.plural == name || r.singular == name || r.short_names.contains(&name)
}

pub fn resolve_builtin(typed: &str) -> Option<Resource> {
    let lower = typed.to_ascii_lowercase();
    if let Some(r) = registry::resolve_name(&lower) {
        return Some(Resource::from_info(r));
    }
    let (name, rest) = lower.split_once('.')?;
    // TYPE.VERSION.GROUP first, then TYPE.GROUP in the preferred version.
    if let Some((version, group)) = rest.split_once('.')
        && let Some(r) = registry::all()
            .iter()
            .find(|r| r.group == group && r.version == version && matches_name(r, name))
    {
        return Some(Resource::from_info(r));
    }
    let g = registry::group_versions()
        .iter()
        .find(|g| g.group == rest)?;
    g.versions.iter().find_map(|v| {
        registry::resources_of(g.group, v)
            .find(|r| matches_name(r, name))
            .map(Resource::from_info)
    })
}

/// The resources of a category (`all`), in discovery order, preferred versions only.
fn category(name: &str) -> Option<Vec<Resource>> {
    let name = name.to_ascii_lowercase();
    let found: Vec<Resource> = registry::group_versions()
        .iter()
        .flat_map(|g| registry::resources_of(g.group, g.preferred_version))
        .filter(|r| r.categories.contains(&name.as_str()))
        .map(Resource::from_info)
        .collect();
    (!found.is_empty()).then_some(found)
}

/// A custom resource by its CRD's names.
async fn resolve_custom(api: &Api, typed: &str) -> Result<Option<Resource>> {
    let lower = typed.to_ascii_lowercase();
    let (name, group) = match lower.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    let crds = match api
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .await
    {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    for crd in crds
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let crd_group = spec["group"].as_str().unwrap_or_default();
        if group.as_deref().is_some_and(|g| g != crd_group) {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
        let hit = s(&names["plural"]) == name
            || s(&names["singular"]) == name
            || s(&names["kind"]) == name
            || names["shortNames"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| s(n) == name));
        if hit && let Some(r) = custom_resource(crd, None) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn custom_resource(crd: &Value, version: Option<&str>) -> Option<Resource> {
    let spec = &crd["spec"];
    let versions = spec["versions"].as_array()?;
    let version = match version {
        Some(v) => versions.iter().find(|x| x["name"] == v)?,
        None => versions
            .iter()
            .find(|x| x["storage"] == true)
            .or(versions.first())?,
    };
    Some(Resource {
        group: spec["group"].as_str()?.to_string(),
        version: version["name"].as_str()?.to_string(),
        kind: spec["names"]["kind"].as_str()?.to_string(),
        plural: spec["names"]["plural"].as_str()?.to_string(),
        namespaced: spec["scope"] != "Cluster",
        builtin: false,
    })
}

/// The resource of a manifest's object, by its apiVersion and kind.
pub async fn for_object(api: &Api, obj: &Value) -> Result<Resource> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(CliError::client(format!(
            "the object has no {}: every object needs apiVersion and kind",
            if kind.is_empty() {
                "kind"
            } else {
                "apiVersion"
            }
        )));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if let Some(r) = registry::find_gvk(group, version, kind) {
        return Ok(Resource::from_info(r));
    }
    let not_found = || {
        CliError::client(format!(
            "resource mapping not found for kind \"{kind}\" in version \"{api_version}\": ensure CRDs are installed first"
        ))
    };
    if registry::group_versions().iter().any(|g| g.group == group) {
        return Err(not_found());
    }
    let crds = api
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        .await?;
    crds.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind)
        .find_map(|crd| custom_resource(crd, Some(version)))
        .ok_or_else(not_found)
}

/// A resource type with the names given for it (none: every object).
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: Resource,
    pub names: Vec<String>,
}

/// Parses kubectl's positional forms: `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`.
pub async fn parse_targets(api: &Api, args: &[String]) -> Result<Vec<Target>> {
    let Some(first) = args.first() else {
        return Err(CliError::client("Required resource not specified."));
    };
    let mut targets: Vec<Target> = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let Some((t, name)) = a.split_once('/') else {
                return Err(CliError::client(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'",
                ));
            };
            if name.is_empty() {
                return Err(CliError::client(format!(
                    "arguments in resource/name form must have a single resource and name: {a}"
                )));
            }
            let r = resolve(api, t).await?;
            match targets.iter_mut().find(|x| x.resource == r) {
                Some(x) => x.names.push(name.to_string()),
                None => targets.push(Target {
                    resource: r,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(targets);
    }
    let names: Vec<String> = args[1..].to_vec();
    for t in first.split(',').filter(|t| !t.is_empty()) {
        let found = match resolve_builtin(t) {
            Some(r) => vec![r],
            None => match category(t) {
                Some(rs) => rs,
                None => vec![resolve(api, t).await?],
            },
        };
        for r in found {
            if !targets.iter().any(|x| x.resource == r) {
                targets.push(Target {
                    resource: r,
                    names: names.clone(),
                });
            }
        }
    }
    if targets.len() > 1 && !names.is_empty() {
        return Err(CliError::client(
            "you must specify only one resource type when naming objects",
        ));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names() {
        let r = resolve_builtin("deploy").map(|r| r.name_prefix());
        assert_eq!(r.as_deref(), Some("deployment.apps"));
        let r = resolve_builtin("deployments.apps").map(|r| r.plural);
        assert_eq!(r.as_deref(), Some("deployments"));
        let r = resolve_builtin("hpa.v1.autoscaling").map(|r| r.version);
        assert_eq!(r.as_deref(), Some("v1"));
        let r = resolve_builtin("Pod").map(|r| r.collection_path(Some("ns")));
        assert_eq!(r.as_deref(), Some("/api/v1/namespaces/ns/pods"));
        let r = resolve_builtin("no").map(|r| r.collection_path(Some("ns")));
        assert_eq!(r.as_deref(), Some("/api/v1/nodes"));
        assert!(resolve_builtin("nosuchthing").is_none());
        assert!(resolve_builtin("pods.nosuchgroup").is_none());
    }
}
