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
    /// Every subresource name as discovery lists it (`status`, `scale`, `log`, `exec`, ...).
    pub subresources: &'static [&'static str],
    /// A custom resource's `additionalPrinterColumns`; empty for built-in kinds, whose
    /// columns the API server knows.
    pub printer_columns: &'static [PrinterColumn],
    /// A custom resource's merge schema for server-side apply (from its CRD); built-in
    /// kinds have theirs in `patch::Schema::for_kind`.
    pub custom_schema: Option<&'static crate::patch::CustomSchema>,
}

/// One column of a custom resource's table, from its CRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
    /// A simple JSONPath such as `.spec.replicas` or `.status.conditions[0].type`.
    pub json_path: &'static str,
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

/// Verbs of a resource that is only created, never stored (reviews, bindings).
pub const CREATE_ONLY: &[&str] = &["create"];

/// Verbs of namespaces: everything but deletecollection.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// Verbs of componentstatuses.
const READ_ONLY_LIST: &[&str] = &["get", "list"];

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

/// A stored, read-write resource with no short names, categories or subresources.
const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        status: false,
        scale: false,
        storage_version: true,
        subresources: &[],
        printer_columns: &[],
        custom_schema: None,
    }
}

/// A namespaced resource.
const fn ns(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
) -> ResourceInfo {
    res(group, version, kind, plural, singular, true)
}

/// A cluster-scoped resource.
const fn cl(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
) -> ResourceInfo {
    res(group, version, kind, plural, singular, false)
}

/// A create-only, never stored resource (reviews).
const fn review(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        verbs: CREATE_ONLY,
        ..res(group, "v1", kind, plural, singular, namespaced)
    }
}

const STATUS_SCALE: &[&str] = &["scale", "status"];
const STATUS: &[&str] = &["status"];

static RESOURCES: &[ResourceInfo] = &[
    // core/v1, in the order of `/api/v1`.
    ResourceInfo {
        verbs: CREATE_ONLY,
        ..ns("", "v1", "Binding", "bindings", "binding")
    },
    ResourceInfo {
        short_names: &["cs"],
        verbs: READ_ONLY_LIST,
        ..cl(
            "",
            "v1",
            "ComponentStatus",
            "componentstatuses",
            "componentstatus",
        )
    },
    ResourceInfo {
        short_names: &["cm"],
        ..ns("", "v1", "ConfigMap", "configmaps", "configmap")
    },
    ResourceInfo {
        short_names: &["ep"],
        ..ns("", "v1", "Endpoints", "endpoints", "endpoints")
    },
    ResourceInfo {
        short_names: &["ev"],
        ..ns("", "v1", "Event", "events", "event")
    },
    ResourceInfo {
        short_names: &["limits"],
        ..ns("", "v1", "LimitRange", "limitranges", "limitrange")
    },
    ResourceInfo {
        short_names: &["ns"],
        verbs: NAMESPACE_VERBS,
        status: true,
        subresources: &["finalize", "status"],
        ..cl("", "v1", "Namespace", "namespaces", "namespace")
    },
    ResourceInfo {
        short_names: &["no"],
        status: true,
        subresources: &["proxy", "status"],
        ..cl("", "v1", "Node", "nodes", "node")
    },
    ResourceInfo {
        short_names: &["pvc"],
        status: true,
        subresources: STATUS,
        ..ns(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
        )
    },
    ResourceInfo {
        short_names: &["pv"],
        status: true,
        subresources: STATUS,
        ..cl(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            "persistentvolume",
        )
    },
    ResourceInfo {
        short_names: &["po"],
        categories: ALL,
        status: true,
        subresources: &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ],
        ..ns("", "v1", "Pod", "pods", "pod")
    },
    ns("", "v1", "PodTemplate", "podtemplates", "podtemplate"),
    ResourceInfo {
        short_names: &["rc"],
        categories: ALL,
        status: true,
        scale: true,
        subresources: STATUS_SCALE,
        ..ns(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            "replicationcontroller",
        )
    },
    ResourceInfo {
        short_names: &["quota"],
        status: true,
        subresources: STATUS,
        ..ns("", "v1", "ResourceQuota", "resourcequotas", "resourcequota")
    },
    ns("", "v1", "Secret", "secrets", "secret"),
    ResourceInfo {
        short_names: &["sa"],
        subresources: &["token"],
        ..ns(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
        )
    },
    ResourceInfo {
        short_names: &["svc"],
        categories: ALL,
        status: true,
        subresources: &["proxy", "status"],
        ..ns("", "v1", "Service", "services", "service")
    },
    // apiregistration.k8s.io/v1
    ResourceInfo {
        categories: API_EXTENSIONS,
        status: true,
        subresources: STATUS,
        ..cl(
            "apiregistration.k8s.io",
            "v1",
            "APIService",
            "apiservices",
            "apiservice",
        )
    },
    // apps/v1
    ns(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
    ),
    ResourceInfo {
        short_names: &["ds"],
        categories: ALL,
        status: true,
        subresources: STATUS,
        ..ns("apps", "v1", "DaemonSet", "daemonsets", "daemonset")
    },
    ResourceInfo {
        short_names: &["deploy"],
        categories: ALL,
        status: true,
        scale: true,
        subresources: STATUS_SCALE,
        ..ns("apps", "v1", "Deployment", "deployments", "deployment")
    },
    ResourceInfo {
        short_names: &["rs"],
        categories: ALL,
        status: true,
        scale: true,
        subresources: STATUS_SCALE,
        ..ns("apps", "v1", "ReplicaSet", "replicasets", "replicaset")
    },
    ResourceInfo {
        short_names: &["sts"],
        categories: ALL,
        status: true,
        scale: true,
        subresources: STATUS_SCALE,
        ..ns("apps", "v1", "StatefulSet", "statefulsets", "statefulset")
    },
    // events.k8s.io/v1: the core Events in another shape (stored as core v1, see `storage_of`).
    ResourceInfo {
        short_names: &["ev"],
        storage_version: false,
        ..ns("events.k8s.io", "v1", "Event", "events", "event")
    },
    // authentication.k8s.io/v1
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
    ),
    review(
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        false,
    ),
    // authorization.k8s.io/v1
    review(
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    ),
    review(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    ),
    // autoscaling/v2 (preferred and stored), then autoscaling/v1
    ResourceInfo {
        short_names: &["hpa"],
        categories: ALL,
        status: true,
        subresources: STATUS,
        ..ns(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
        )
    },
    ResourceInfo {
        short_names: &["hpa"],
        categories: ALL,
        status: true,
        subresources: STATUS,
        storage_version: false,
        ..ns(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
        )
    },
    // batch/v1
    ResourceInfo {
        short_names: &["cj"],
        categories: ALL,
        status: true,
        subresources: STATUS,
        ..ns("batch", "v1", "CronJob", "cronjobs", "cronjob")
    },
    ResourceInfo {
        categories: ALL,
        status: true,
        subresources: STATUS,
        ..ns("batch", "v1", "Job", "jobs", "job")
    },
    // certificates.k8s.io/v1
    ResourceInfo {
        short_names: &["csr"],
        status: true,
        subresources: &["approval", "status"],
        ..cl(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            "certificatesigningrequest",
        )
    },
    // networking.k8s.io/v1
    ResourceInfo {
        short_names: &["ip"],
        ..cl(
            "networking.k8s.io",
            "v1",
            "IPAddress",
            "ipaddresses",
            "ipaddress",
        )
    },
    cl(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
    ),
    ResourceInfo {
        short_names: &["ing"],
        status: true,
        subresources: STATUS,
        ..ns("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress")
    },
    ResourceInfo {
        short_names: &["netpol"],
        ..ns(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            "networkpolicy",
        )
    },
    ResourceInfo {
        status: true,
        subresources: STATUS,
        ..cl(
            "networking.k8s.io",
            "v1",
            "ServiceCIDR",
            "servicecidrs",
            "servicecidr",
        )
    },
    // policy/v1
    ResourceInfo {
        short_names: &["pdb"],
        status: true,
        subresources: STATUS,
        ..ns(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
        )
    },
    // rbac.authorization.k8s.io/v1
    cl(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
    ),
    cl(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
    ),
    ns(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
    ),
    ns("rbac.authorization.k8s.io", "v1", "Role", "roles", "role"),
    // storage.k8s.io/v1
    cl(
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        "csidriver",
    ),
    cl("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode"),
    ns(
        "storage.k8s.io",
        "v1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        "csistoragecapacity",
    ),
    ResourceInfo {
        short_names: &["sc"],
        ..cl(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            "storageclass",
        )
    },
    ResourceInfo {
        status: true,
        subresources: STATUS,
        ..cl(
            "storage.k8s.io",
            "v1",
            "VolumeAttachment",
            "volumeattachments",
            "volumeattachment",
        )
    },
    ResourceInfo {
        short_names: &["vac"],
        ..cl(
            "storage.k8s.io",
            "v1",
            "VolumeAttributesClass",
            "volumeattributesclasses",
            "volumeattributesclass",
        )
    },
    // admissionregistration.k8s.io/v1
    ResourceInfo {
        categories: API_EXTENSIONS,
        ..cl(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
        )
    },
    ResourceInfo {
        categories: API_EXTENSIONS,
        status: true,
        subresources: STATUS,
        ..cl(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            "validatingadmissionpolicy",
        )
    },
    ResourceInfo {
        categories: API_EXTENSIONS,
        ..cl(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
        )
    },
    ResourceInfo {
        categories: API_EXTENSIONS,
        ..cl(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
        )
    },
    // apiextensions.k8s.io/v1
    ResourceInfo {
        short_names: &["crd", "crds"],
        categories: API_EXTENSIONS,
        status: true,
        subresources: STATUS,
        ..cl(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
        )
    },
    // scheduling.k8s.io/v1
    ResourceInfo {
        short_names: &["pc"],
        ..cl(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
        )
    },
    // coordination.k8s.io/v1
    ns("coordination.k8s.io", "v1", "Lease", "leases", "lease"),
    // node.k8s.io/v1
    cl(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        "runtimeclass",
    ),
    // discovery.k8s.io/v1
    ns(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
    ),
    // flowcontrol.apiserver.k8s.io/v1
    ResourceInfo {
        status: true,
        subresources: STATUS,
        ..cl(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "FlowSchema",
            "flowschemas",
            "flowschema",
        )
    },
    ResourceInfo {
        status: true,
        subresources: STATUS,
        ..cl(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "PriorityLevelConfiguration",
            "prioritylevelconfigurations",
            "prioritylevelconfiguration",
        )
    },
    // resource.k8s.io/v1
    cl(
        "resource.k8s.io",
        "v1",
        "DeviceClass",
        "deviceclasses",
        "deviceclass",
    ),
    ResourceInfo {
        status: true,
        subresources: STATUS,
        ..ns(
            "resource.k8s.io",
            "v1",
            "ResourceClaim",
            "resourceclaims",
            "resourceclaim",
        )
    },
    ns(
        "resource.k8s.io",
        "v1",
        "ResourceClaimTemplate",
        "resourceclaimtemplates",
        "resourceclaimtemplate",
    ),
    cl(
        "resource.k8s.io",
        "v1",
        "ResourceSlice",
        "resourceslices",
        "resourceslice",
    ),
];

/// One served API group with its versions, as `/api` and `/apis` list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVersions {
    /// "" for the core group.
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    pub preferred_version: &'static str,
}

impl GroupVersions {
    /// "apps/v1", or "v1" for the core group.
    pub fn group_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
}

const fn gv(group: &'static str, versions: &'static [&'static str]) -> GroupVersions {
    GroupVersions {
        group,
        versions,
        preferred_version: versions[0],
    }
}

/// Groups in upstream's discovery order: the core group, the aggregator's own group, then
/// by the aggregator's group priority (highest first, ties by name).
static GROUP_VERSIONS: &[GroupVersions] = &[
    gv("", &["v1"]),
    gv("apiregistration.k8s.io", &["v1"]),
    gv("apps", &["v1"]),
    gv("events.k8s.io", &["v1"]),
    gv("authentication.k8s.io", &["v1"]),
    gv("authorization.k8s.io", &["v1"]),
    gv("autoscaling", &["v2", "v1"]),
    gv("batch", &["v1"]),
    gv("certificates.k8s.io", &["v1"]),
    gv("networking.k8s.io", &["v1"]),
    gv("policy", &["v1"]),
    gv("rbac.authorization.k8s.io", &["v1"]),
    gv("storage.k8s.io", &["v1"]),
    gv("admissionregistration.k8s.io", &["v1"]),
    gv("apiextensions.k8s.io", &["v1"]),
    gv("scheduling.k8s.io", &["v1"]),
    gv("coordination.k8s.io", &["v1"]),
    gv("node.k8s.io", &["v1"]),
    gv("discovery.k8s.io", &["v1"]),
    gv("flowcontrol.apiserver.k8s.io", &["v1"]),
    gv("resource.k8s.io", &["v1"]),
];

/// Every built-in resource, grouped by group-version in discovery order; within a
/// group-version sorted by plural as `/apis/GROUP/VERSION` lists them.
pub fn all() -> &'static [ResourceInfo] {
    RESOURCES
}

/// Served groups and versions in upstream's discovery order (core first).
pub fn group_versions() -> &'static [GroupVersions] {
    GROUP_VERSIONS
}

/// The resources of one group-version, in discovery order.
pub fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resource served at `/apis/GROUP/VERSION/PLURAL` (`/api/v1/PLURAL` for group "").
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in a group, in its storage version.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind && r.storage_version)
}

/// Where objects of `info` are stored: the storage version of its kind. events.k8s.io
/// Events are core v1 Events, as upstream keeps both in one place, so a client of either
/// API sees the events written through the other.
pub fn storage_of(info: &ResourceInfo) -> &ResourceInfo {
    if info.storage_version {
        return info;
    }
    let (group, kind) = match (info.group, info.kind) {
        ("events.k8s.io", "Event") => ("", "Event"),
        other => other,
    };
    find_kind(group, kind).unwrap_or(info)
}

/// The resource of a kind in one group-version.
pub fn find_gvk(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Resolves what a user typed (`kubectl get po`): a plural, singular or short name, in
/// any group, preferring groups earlier in discovery order and their preferred version.
pub fn resolve_name(name: &str) -> Option<&'static ResourceInfo> {
    let name = name.to_ascii_lowercase();
    let matches = |r: &&ResourceInfo| {
        r.plural == name || r.singular == name || r.short_names.contains(&name.as_str())
    };
    GROUP_VERSIONS.iter().find_map(|g| {
        g.versions.iter().find_map(|v| {
            RESOURCES
                .iter()
                .filter(|r| r.group == g.group && r.version == *v)
                .find(matches)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    #[test]
    fn plurals_are_unique_per_group_version_and_lower_case() {
        let mut seen = HashSet::new();
        for r in all() {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "duplicate {}/{}",
                r.api_version(),
                r.plural
            );
            for name in [r.plural, r.singular]
                .iter()
                .chain(r.short_names.iter())
                .chain(r.categories.iter())
            {
                assert_eq!(*name, name.to_ascii_lowercase(), "{name} is not lower case");
            }
            assert_eq!(r.singular, r.kind.to_ascii_lowercase());
            assert!(!r.verbs.is_empty());
            assert!(
                r.verbs.windows(2).all(|w| w[0] < w[1]),
                "{} verbs unsorted",
                r.plural
            );
            assert_eq!(r.status, r.subresources.contains(&"status"), "{}", r.plural);
            assert_eq!(r.scale, r.subresources.contains(&"scale"), "{}", r.plural);
        }
    }

    #[test]
    fn every_resource_is_in_a_served_group_version_and_one_storage_version_per_kind() {
        for r in all() {
            let g = group_versions()
                .iter()
                .find(|g| g.group == r.group)
                .unwrap_or_else(|| panic!("group {} not served", r.group));
            assert!(g.versions.contains(&r.version), "{}", r.api_version());
        }
        for g in group_versions() {
            for v in g.versions {
                assert!(
                    resources_of(g.group, v).next().is_some(),
                    "{}",
                    g.group_version(v)
                );
            }
        }
        let mut storage: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for r in all() {
            let stored = storage_of(r);
            assert!(
                stored.storage_version,
                "{} {} is stored nowhere",
                r.group, r.kind
            );
            assert_eq!(stored.plural, r.plural);
            *storage.entry((stored.group, stored.kind)).or_default() +=
                usize::from(r.storage_version);
        }
        for ((group, kind), n) in storage {
            assert_eq!(n, 1, "{group} {kind} has {n} storage versions");
        }
        let events = find("events.k8s.io", "v1", "events").map(|r| storage_of(r).api_version());
        assert_eq!(events.as_deref(), Some("v1"));
        let hpa = find_kind("autoscaling", "HorizontalPodAutoscaler").map(|r| r.version);
        assert_eq!(hpa, Some("v2"));
    }

    #[test]
    fn lookups() {
        let d = find("apps", "v1", "deployments").map(|r| r.kind);
        assert_eq!(d, Some("Deployment"));
        assert!(find("", "v1", "deployments").is_none());
        assert_eq!(find_kind("", "Pod").map(|r| r.plural), Some("pods"));
        assert_eq!(resolve_name("po").map(|r| r.kind), Some("Pod"));
        assert_eq!(resolve_name("deploy").map(|r| r.group), Some("apps"));
        assert_eq!(resolve_name("ev").map(|r| r.group), Some(""));
        assert_eq!(resolve_name("hpa").map(|r| r.version), Some("v2"));
        assert_eq!(
            resolve_name("crd").map(|r| r.kind),
            Some("CustomResourceDefinition")
        );
        assert_eq!(
            find("", "v1", "bindings").map(|r| r.verbs),
            Some(CREATE_ONLY)
        );
        assert_eq!(
            find("", "v1", "componentstatuses").map(|r| r.verbs),
            Some(READ_ONLY_LIST)
        );
        let scaled: BTreeSet<&str> = all().iter().filter(|r| r.scale).map(|r| r.plural).collect();
        let expected = [
            "deployments",
            "replicasets",
            "replicationcontrollers",
            "statefulsets",
        ];
        assert_eq!(scaled, expected.into_iter().collect());
    }

    /// (apiVersion, plural, namespaced) of every non-alpha, non-beta top-level kind in
    /// k8s-openapi's 1.35 types.
    fn k8s_openapi_resources() -> BTreeSet<(String, String, bool)> {
        use k8s_openapi::{NamespaceResourceScope, Resource};
        use std::any::TypeId;
        fn one<T: Resource + 'static>() -> (String, String, bool) {
            let namespaced = TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>();
            (
                T::API_VERSION.to_string(),
                T::URL_PATH_SEGMENT.to_string(),
                namespaced,
            )
        }
        macro_rules! set {
            ($($t:ty),* $(,)?) => { [$(one::<$t>()),*].into_iter().collect() };
        }
        use k8s_openapi::api::{
            admissionregistration::v1 as adm, apps::v1 as apps, authentication::v1 as authn,
            authorization::v1 as authz, autoscaling::v1 as as1, autoscaling::v2 as as2,
            batch::v1 as batch, certificates::v1 as cert, coordination::v1 as coord,
            core::v1 as core, discovery::v1 as disc, events::v1 as events, flowcontrol::v1 as fc,
            networking::v1 as net, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
            resource::v1 as dra, scheduling::v1 as sched, storage::v1 as storage,
        };
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
        use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as reg;
        set![
            core::Binding,
            core::ComponentStatus,
            core::ConfigMap,
            core::Endpoints,
            core::Event,
            core::LimitRange,
            core::Namespace,
            core::Node,
            core::PersistentVolumeClaim,
            core::PersistentVolume,
            core::Pod,
            core::PodTemplate,
            core::ReplicationController,
            core::ResourceQuota,
            core::Secret,
            core::ServiceAccount,
            core::Service,
            reg::APIService,
            apps::ControllerRevision,
            apps::DaemonSet,
            apps::Deployment,
            apps::ReplicaSet,
            apps::StatefulSet,
            events::Event,
            authn::SelfSubjectReview,
            authn::TokenReview,
            authz::LocalSubjectAccessReview,
            authz::SelfSubjectAccessReview,
            authz::SelfSubjectRulesReview,
            authz::SubjectAccessReview,
            as1::HorizontalPodAutoscaler,
            as2::HorizontalPodAutoscaler,
            batch::CronJob,
            batch::Job,
            cert::CertificateSigningRequest,
            net::IPAddress,
            net::IngressClass,
            net::Ingress,
            net::NetworkPolicy,
            net::ServiceCIDR,
            policy::PodDisruptionBudget,
            rbac::ClusterRoleBinding,
            rbac::ClusterRole,
            rbac::RoleBinding,
            rbac::Role,
            storage::CSIDriver,
            storage::CSINode,
            storage::CSIStorageCapacity,
            storage::StorageClass,
            storage::VolumeAttachment,
            storage::VolumeAttributesClass,
            adm::MutatingWebhookConfiguration,
            adm::ValidatingAdmissionPolicy,
            adm::ValidatingAdmissionPolicyBinding,
            adm::ValidatingWebhookConfiguration,
            ext::CustomResourceDefinition,
            sched::PriorityClass,
            coord::Lease,
            node::RuntimeClass,
            disc::EndpointSlice,
            fc::FlowSchema,
            fc::PriorityLevelConfiguration,
            dra::DeviceClass,
            dra::ResourceClaim,
            dra::ResourceClaimTemplate,
            dra::ResourceSlice,
        ]
    }

    #[test]
    fn matches_k8s_openapi() {
        let ours: BTreeSet<(String, String, bool)> = all()
            .iter()
            .map(|r| (r.api_version(), r.plural.to_string(), r.namespaced))
            .collect();
        assert_eq!(ours, k8s_openapi_resources());
        assert_eq!(ours.len(), all().len());
    }
}
