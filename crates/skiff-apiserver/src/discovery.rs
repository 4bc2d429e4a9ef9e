//! Discovery documents: `/api`, `/apis`, per group-version resource lists, and aggregated discovery (v2).

use crate::crd::Resources;
use serde_json::{Value, json};
use skiff_api::registry::ResourceInfo;

pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery (first choice).
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList") && first.contains("v=v2"))
}

pub fn versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String], preferred: &str) -> Value {
    json!({
        "name": group,
        "versions": versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect::<Vec<_>>(),
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    })
}

pub fn groups(resources: &Resources) -> Value {
    let mut groups: Vec<Value> = resources
        .group_versions()
        .iter()
        .filter(|g| !g.group.is_empty())
        .map(|g| group_entry(&g.group, &g.versions, g.preferred()))
        .collect();
    groups.push(metrics_group());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `metrics.k8s.io`, served by `metrics_api` outside the registry (as upstream's aggregated API).
fn metrics_group() -> Value {
    use crate::metrics_api::{GROUP, VERSION};
    group_entry(GROUP, &[VERSION.to_string()], VERSION)
}

pub fn group(resources: &Resources, name: &str) -> Option<Value> {
    if name == crate::metrics_api::GROUP {
        let mut v = metrics_group();
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        return Some(v);
    }
    let gvs = resources.group_versions();
    let g = gvs.iter().find(|g| g.group == name && !name.is_empty())?;
    let mut v = group_entry(&g.group, &g.versions, g.preferred());
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "status" | "scale" | "ephemeralcontainers" | "resize" | "approval" => {
            vec!["get", "patch", "update"]
        }
        "finalize" => vec!["update"],
        "log" => vec!["get"],
        "exec" | "attach" | "portforward" | "proxy" => vec!["create", "get"],
        _ => vec!["create"],
    }
}

pub fn resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    if group == crate::metrics_api::GROUP && version == crate::metrics_api::VERSION {
        return Some(crate::metrics_api::resource_list());
    }
    let infos = resources.resources_of(group, version);
    if infos.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in infos {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        if let Some(hash) = storage_version_hash(resources, r) {
            entry["storageVersionHash"] = json!(hash);
        }
        entries.push(entry);
        for sub in subresources(r) {
            let mut e = json!({
                "name": format!("{}/{}", r.plural, sub.0),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.1,
                "verbs": subresource_verbs(sub.0),
            });
            // Subresources of another group name it, as upstream does (kubectl drain looks
            // for policy/v1 on pods/eviction before it evicts instead of deleting).
            if let Some((g, v)) = subresource_group_version(sub.0) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            entries.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}),
    )
}

/// The hash of the group, version and kind a resource is stored as, which discovery
/// reports for every stored resource (not for subresources, reviews or bindings) so that
/// storage migrators can tell when it changes: the first 8 bytes of the SHA-256 of
/// `group/version/kind`, in base64, as upstream computes it.
fn storage_version_hash(resources: &Resources, r: &ResourceInfo) -> Option<String> {
    use base64::Engine as _;
    if !r.verbs.contains(&"watch") {
        return None;
    }
    let stored = if r.storage_version {
        r
    } else if r.group == "events.k8s.io" && r.kind == "Event" {
        // Both Event kinds are stored as core v1 Events.
        skiff_api::registry::find("", "v1", "events")?
    } else {
        resources
            .group_versions()
            .into_iter()
            .filter(|g| g.group == r.group)
            .flat_map(|g| {
                g.versions
                    .iter()
                    .flat_map(|v| resources.resources_of(&g.group, v))
                    .collect::<Vec<_>>()
            })
            .find(|o| o.kind == r.kind && o.storage_version)?
    };
    let gvk = format!("{}/{}/{}", stored.group, stored.version, stored.kind);
    let digest = ring::digest::digest(&ring::digest::SHA256, gvk.as_bytes());
    let head = digest.as_ref().get(..8)?;
    Some(base64::engine::general_purpose::STANDARD.encode(head))
}

/// The group and version of a subresource's kind, when it is not the resource's own.
fn subresource_group_version(sub: &str) -> Option<(&'static str, &'static str)> {
    match sub {
        "scale" => Some(("autoscaling", "v1")),
        "eviction" => Some(("policy", "v1")),
        "token" => Some(("authentication.k8s.io", "v1")),
        _ => None,
    }
}

/// The subresources a resource serves, with the kind each returns.
pub fn subresources(r: &ResourceInfo) -> Vec<(&'static str, &'static str)> {
    r.subresources
        .iter()
        .map(|s| {
            let kind = match *s {
                "status" | "finalize" | "log" | "proxy" | "approval" => r.kind,
                "scale" => "Scale",
                "binding" => "Binding",
                "eviction" => "Eviction",
                "exec" => "PodExecOptions",
                "attach" => "PodAttachOptions",
                "portforward" => "PodPortForwardOptions",
                "token" => "TokenRequest",
                "ephemeralcontainers" | "resize" => "Pod",
                _ => r.kind,
            };
            (*s, kind)
        })
        .collect()
}

/// Aggregated discovery for `/api` (core) or `/apis` (every other group).
pub fn aggregated(resources: &Resources, core: bool) -> Value {
    let mut items = Vec::new();
    for g in resources.group_versions() {
        if g.group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = g
            .versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = resources
                    .resources_of(&g.group, v)
                    .into_iter()
                    .map(|r| {
                        let mut e = json!({
                            "resource": r.plural,
                            "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": r.singular,
                            "verbs": r.verbs,
                        });
                        if !r.short_names.is_empty() {
                            e["shortNames"] = json!(r.short_names);
                        }
                        if !r.categories.is_empty() {
                            e["categories"] = json!(r.categories);
                        }
                        let subs: Vec<Value> = subresources(r)
                            .into_iter()
                            .map(|(s, kind)| {
                                let (group, version) = subresource_group_version(s).unwrap_or((r.group, r.version));
                                json!({"subresource": s, "responseKind": {"group": group, "version": version, "kind": kind}, "verbs": subresource_verbs(s)})
                            })
                            .collect();
                        if !subs.is_empty() {
                            e["subresources"] = json!(subs);
                        }
                        e
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(
            json!({"metadata": {"name": g.group, "creationTimestamp": null}, "versions": versions}),
        );
    }
    if !core {
        items.push(crate::metrics_api::aggregated_item());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(list: &Value, name: &str) -> Value {
        list["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn stored_resources_report_upstreams_storage_version_hash() {
        let resources = Resources::default();
        let core = resource_list(&resources, "", "v1").unwrap_or(Value::Null);
        assert_eq!(
            entry(&core, "configmaps")["storageVersionHash"],
            "qFsyl6wFWjQ="
        );
        assert_eq!(entry(&core, "pods")["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert_eq!(entry(&core, "pods/status").get("storageVersionHash"), None);
        assert_eq!(entry(&core, "bindings").get("storageVersionHash"), None);
        assert_eq!(
            entry(&core, "componentstatuses").get("storageVersionHash"),
            None
        );
        let apps = resource_list(&resources, "apps", "v1").unwrap_or(Value::Null);
        assert_eq!(
            entry(&apps, "deployments")["storageVersionHash"],
            "8aSe+NMegvE="
        );
        // events.k8s.io Events are stored as core Events.
        let events = resource_list(&resources, "events.k8s.io", "v1").unwrap_or(Value::Null);
        assert_eq!(
            entry(&events, "events")["storageVersionHash"],
            "r2yiGXH7wu8="
        );

        let crd = serde_json::json!({"metadata": {"name": "foos.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "foos", "singular": "foo", "kind": "Foo"},
            "versions": [{"name": "v1", "served": true, "storage": false},
                         {"name": "v2", "served": true, "storage": true}]}});
        resources.define(&crd);
        let v1 = resource_list(&resources, "example.com", "v1").unwrap_or(Value::Null);
        let v2 = resource_list(&resources, "example.com", "v2").unwrap_or(Value::Null);
        let hash = entry(&v1, "foos")["storageVersionHash"].clone();
        assert!(hash.is_string(), "{v1}");
        assert_eq!(hash, entry(&v2, "foos")["storageVersionHash"]);
    }
}
