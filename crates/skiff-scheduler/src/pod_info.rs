//! A pod with everything the plugins read from it parsed once: requests, ports, affinity terms.

use crate::resources::{self, Resource};
use crate::selector::{NodeSelectorTerms, Requirement, Selector};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, Toleration};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `namespace/name`.
pub type PodKey = String;

pub fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Label lookup for namespaces (for affinity terms' `namespaceSelector`).
pub trait NamespaceLabels {
    fn labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>>;
}

impl NamespaceLabels for BTreeMap<String, BTreeMap<String, String>> {
    fn labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.get(namespace)
    }
}

/// A compiled pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(owner_ns: &str, t: &PodAffinityTerm) -> Result<AffinityTerm, String> {
        let selector = Selector::from_label_selector(t.label_selector.as_ref())?;
        let namespace_selector = t
            .namespace_selector
            .as_ref()
            .map(|s| Selector::from_label_selector(Some(s)))
            .transpose()?;
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(owner_ns.to_string());
        }
        Ok(AffinityTerm {
            namespaces,
            namespace_selector,
            selector,
            topology_key: t.topology_key.clone(),
        })
    }

    /// Whether `pod` is selected by this term (namespace and labels).
    pub fn matches(&self, pod: &PodInfo, ns: &dyn NamespaceLabels) -> bool {
        let in_ns = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.is_everything() || ns.labels(&pod.namespace).is_some_and(|l| s.matches(l))
            });
        in_ns && self.selector.matches(&pod.labels)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i64,
}

/// A compiled topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (a filter) as opposed to `ScheduleAnyway` (a score).
    pub hard: bool,
    pub selector: Selector,
    pub min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (the default is Ignore).
    pub honor_node_taints: bool,
}

/// A host port a pod asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// A pod, parsed for scheduling.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: PodKey,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// The pod's requests, or why they cannot be read.
    pub requests: Result<Resource, String>,
    /// Requests with the scoring defaults for containers that ask no cpu or memory.
    pub non_zero: (i64, i64),
    pub host_ports: Vec<HostPort>,
    pub images: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelectorTerms>,
    pub preferred_node_affinity: Vec<(i64, NodeSelectorTerms)>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    pub spread_constraints: Vec<SpreadConstraint>,
    pub pvc_names: Vec<String>,
    /// Why the pod's affinity or spread constraints cannot be used, if they cannot.
    pub parse_error: Option<String>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        // Read through a second handle, so that `pod` can move into the result.
        let held = Arc::clone(&pod);
        let no_spec = k8s_openapi::api::core::v1::PodSpec::default();
        let spec = held.spec.as_ref().unwrap_or(&no_spec);
        let requests = resources::pod_requests(spec, false).map_err(|e| e.to_string());
        let non_zero = resources::pod_requests(spec, true)
            .map(|r| (r.milli_cpu, r.memory))
            .unwrap_or((0, 0));
        let mut host_ports = Vec::new();
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in spec.containers.iter().chain(sidecars) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        let images = spec
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .map(normalized_image_name)
            .collect();
        let mut parse_error = None;
        let mut note = |e: String| {
            parse_error.get_or_insert(e);
        };
        let affinity = spec.affinity.as_ref();
        let node_aff = affinity.and_then(|a| a.node_affinity.as_ref());
        let required_node_affinity = node_aff
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelectorTerms::parse);
        let preferred_node_affinity = node_aff
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    i64::from(p.weight),
                    NodeSelectorTerms(vec![crate::selector::NodeTerm::parse(&p.preference)]),
                )
            })
            .collect();
        let mut terms = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.into_iter()
                .flatten()
                .filter_map(|t| AffinityTerm::parse(&namespace, t).map_err(&mut note).ok())
                .collect()
        };
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required_affinity = terms(pa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = terms(paa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let mut weighted =
            |ts: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                ts.into_iter()
                    .flatten()
                    .filter_map(|w| {
                        AffinityTerm::parse(&namespace, &w.pod_affinity_term)
                            .map_err(&mut note)
                            .ok()
                            .map(|term| WeightedAffinityTerm {
                                term,
                                weight: i64::from(w.weight),
                            })
                    })
                    .collect::<Vec<_>>()
            };
        let preferred_affinity = weighted(pa.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = weighted(paa.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let mut spread_constraints = Vec::new();
        for c in spec.topology_spread_constraints.iter().flatten() {
            let mut selector = match Selector::from_label_selector(c.label_selector.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    note(e);
                    continue;
                }
            };
            // matchLabelKeys narrow the selector to this pod's own values of those keys.
            if !selector.nothing {
                for k in c.match_label_keys.iter().flatten() {
                    if let Some(v) = labels.get(k) {
                        selector.requirements.push(Requirement {
                            key: k.clone(),
                            op: crate::selector::Op::In,
                            values: vec![v.clone()],
                        });
                    }
                }
            }
            spread_constraints.push(SpreadConstraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                hard: c.when_unsatisfiable != "ScheduleAnyway",
                selector,
                min_domains: i64::from(c.min_domains.unwrap_or(1).max(1)),
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            });
        }
        let pvc_names = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .collect();
        PodInfo {
            key: format!("{namespace}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            namespace,
            name,
            labels,
            requests,
            non_zero,
            host_ports,
            images,
            required_node_affinity,
            preferred_node_affinity,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread_constraints,
            pvc_names,
            parse_error,
            pod,
        }
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.spec()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    pub fn requests_or_zero(&self) -> Resource {
        self.requests.clone().unwrap_or_default()
    }

    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// Upstream's image name normalization: a name without a tag or digest means `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    if colon.is_none() || colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// The pod's priority, as upstream's `PodPriority`: zero when unset.
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_normalized() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalized_image_name("a@sha256:abc"), "a@sha256:abc");
    }
}
