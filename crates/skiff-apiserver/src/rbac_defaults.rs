//! The RBAC objects every Kubernetes cluster starts with (upstream's bootstrap policy):
//! the user-facing ClusterRoles `cluster-admin`, `admin`, `edit` and `view` (the last three
//! aggregated from the `system:aggregate-to-*` roles and whatever else carries their labels),
//! the `system:` roles components and charts bind to, their ClusterRoleBindings, and the
//! `extension-apiserver-authentication-reader` Role in kube-system. Charts bind to these by
//! name (`system:auth-delegator`, `extension-apiserver-authentication-reader`, `view`).
//!
//! Each is created when missing, once per start, as upstream's `rbac/bootstrap-roles` hook
//! does; one a user changed or deleted is left so until the next start. skiff's authorizer
//! does not evaluate RBAC yet (see `authz`): these are the objects, not the policy.

use crate::rest::{create_object, get_object};
use crate::server::ApiServer;
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_api::status::ApiError;
use std::sync::Arc;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const RBAC: &str = "rbac.authorization.k8s.io";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Every verb of an ordinary resource, as discovery lists them.
const READ_WRITE: &[&str] = registry::ALL_VERBS;
const EVENTS_WRITE: &[&str] = &["create", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn named(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resourceNames": names, "resources": resources, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert(BOOTSTRAPPING.into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"name": name, "annotations": {AUTOUPDATE: "true"}, "labels": l})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels), "rules": rules})
}

/// A ClusterRole whose rules the aggregation controller fills from the roles labelled `from`.
fn aggregated(name: &str, labels: &[(&str, &str)], from: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {from: "true"}}]}})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": RBAC, "kind": "User", "name": name})
}

fn group(name: &str) -> Value {
    json!({"apiGroup": RBAC, "kind": "Group", "name": name})
}

fn binding(role: &str, subjects: Vec<Value>) -> Value {
    let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(role, &[]),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}});
    if !subjects.is_empty() {
        b["subjects"] = json!(subjects);
    }
    b
}

fn cert_approver(signer: &str) -> Value {
    cluster_role(
        &format!("system:certificates.k8s.io:{signer}-approver"),
        &[],
        vec![named(
            &["certificates.k8s.io"],
            &["signers"],
            &[&format!("kubernetes.io/{signer}")],
            &["approve"],
        )],
    )
}

/// The bootstrap ClusterRoles, in upstream's order (by name).
pub fn cluster_roles() -> Vec<Value> {
    let core = &[""];
    vec![
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(&[RBAC], &["rolebindings", "roles"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    core,
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(core, &["serviceaccounts"], &["impersonate"]),
                rule(
                    core,
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    WRITE,
                ),
                rule(core, &["pods/eviction"], &["create"]),
                rule(
                    core,
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(core, &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                    WRITE,
                ),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    core,
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    core,
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(core, &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        cert_approver("kube-apiserver-client"),
        cert_approver("kube-apiserver-client-kubelet"),
        cert_approver("kubelet-serving"),
        cert_approver("legacy-unknown"),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(crate::authz::DISCOVERY_PATHS, &["get"])],
        ),
        cluster_role(
            "system:kube-aggregator",
            &[],
            vec![rule(core, &["endpoints", "services"], READ)],
        ),
        cluster_role(
            "system:kube-dns",
            &[],
            vec![rule(core, &["endpoints", "services"], &["list", "watch"])],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(core, &["nodes"], READ),
                rule(core, &["nodes"], &["proxy"]),
                rule(
                    core,
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                    &["*"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule(core, &["endpoints", "services"], &["list", "watch"]),
                rule(core, &["nodes"], READ),
                rule(&["", "events.k8s.io"], &["events"], EVENTS_WRITE),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            &[],
            vec![
                rule(
                    core,
                    &["persistentvolumes"],
                    &["create", "delete", "get", "list", "watch"],
                ),
                rule(
                    core,
                    &["persistentvolumeclaims"],
                    &["get", "list", "update", "watch"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(core, &["events"], &["watch"]),
                rule(&["", "events.k8s.io"], &["events"], EVENTS_WRITE),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
                &["get"],
            )],
        ),
        cluster_role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(
                    core,
                    &["persistentvolumes"],
                    &["get", "list", "patch", "update", "watch"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(
                    core,
                    &["persistentvolumeclaims"],
                    &["get", "list", "patch", "update", "watch"],
                ),
            ],
        ),
        aggregated("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
    ]
}

/// The bootstrap ClusterRoleBindings of the roles above.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", vec![group("system:masters")]),
        binding("system:basic-user", vec![group("system:authenticated")]),
        binding("system:discovery", vec![group("system:authenticated")]),
        binding(
            "system:kube-dns",
            vec![json!({"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"})],
        ),
        binding("system:monitoring", vec![group("system:monitoring")]),
        binding("system:node-proxier", vec![user("system:kube-proxy")]),
        binding(
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        binding(
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        binding(
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
    ]
}

/// The bootstrap Roles, with their namespaces.
pub fn roles() -> Vec<(&'static str, Value)> {
    vec![(
        "kube-system",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": metadata("extension-apiserver-authentication-reader", &[]),
            "rules": [named(&[""], &["configmaps"], &["extension-apiserver-authentication"], READ)]}),
    )]
}

/// Creates every bootstrap object that does not exist.
pub async fn ensure(server: &Arc<ApiServer>) -> Result<(), ApiError> {
    let find = |plural: &str| {
        registry::find(RBAC, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))
    };
    let (cr, crb, r) = (
        find("clusterroles")?,
        find("clusterrolebindings")?,
        find("roles")?,
    );
    let objects = cluster_roles()
        .into_iter()
        .map(|o| (cr, None, o))
        .chain(cluster_role_bindings().into_iter().map(|o| (crb, None, o)))
        .chain(roles().into_iter().map(|(ns, o)| (r, Some(ns), o)));
    for (info, ns, obj) in objects {
        let name = crate::objects::name_of(&obj).to_string();
        match get_object(server, info, ns, &name).await {
            Ok(_) => continue,
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        match create_object(server, info, ns, obj, false, Some("kube-apiserver")).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_bootstrap_role() {
        let roles: Vec<String> = cluster_roles()
            .iter()
            .map(|r| crate::objects::name_of(r).to_string())
            .collect();
        let mut sorted = roles.clone();
        sorted.sort();
        assert_eq!(roles, sorted, "upstream's order, by name");
        for b in cluster_role_bindings() {
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            assert!(roles.iter().any(|r| r == role), "{role}");
        }
        for r in cluster_roles() {
            let causes = skiff_api::validation::validate(RBAC, "ClusterRole", &r);
            assert!(causes.is_empty(), "{r}: {causes:?}");
        }
    }
}
