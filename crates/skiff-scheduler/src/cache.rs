//! The scheduler's view of the cluster: one `NodeInfo` per node with the pods on it (bound, or
//! assumed by this scheduler and not yet seen bound), plus the objects the filters consult.

use crate::pod_info::{HostPort, PodInfo, PodKey};
use crate::resources::Resource;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Taint};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One node and what is placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the scheduler has not seen (yet or any more).
    pub node: Option<Arc<Node>>,
    pub allocatable: Resource,
    pub requested: Resource,
    /// Requests with the scoring defaults (cpu millicores, memory bytes).
    pub non_zero_requested: (i64, i64),
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: HashMap<HostPort, u32>,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Image name → size in bytes, from `status.images`.
    pub images: HashMap<String, i64>,
    /// `spec.taints` and `spec.unschedulable`, kept here so that filtering a node for every
    /// pod does not reach into the Node object.
    taints: Vec<Taint>,
    unschedulable: bool,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..NodeInfo::default()
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&NO_LABELS)
    }

    pub fn taints(&self) -> &[Taint] {
        &self.taints
    }

    pub fn unschedulable(&self) -> bool {
        self.unschedulable
    }

    fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        let list = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .cloned()
            .unwrap_or_default();
        // A node with an unreadable quantity offers nothing of that resource set.
        self.allocatable = Resource::from_list(&list).unwrap_or_else(|e| {
            tracing::warn!(node = %self.name, error = %e, "unreadable node allocatable");
            Resource::default()
        });
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.node = Some(node);
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        let mut r = p.requests_or_zero();
        r.allowed_pod_number = 0;
        self.requested.add(&r);
        self.non_zero_requested.0 += p.non_zero.0;
        self.non_zero_requested.1 += p.non_zero.1;
        for hp in &p.host_ports {
            *self.used_ports.entry(hp.clone()).or_default() += 1;
        }
        if p.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let p = self.pods.swap_remove(i);
        let mut r = p.requests_or_zero();
        r.allowed_pod_number = 0;
        self.requested.sub(&r);
        self.non_zero_requested.0 -= p.non_zero.0;
        self.non_zero_requested.1 -= p.non_zero.1;
        for hp in &p.host_ports {
            if let Some(n) = self.used_ports.get_mut(hp) {
                *n -= 1;
                if *n == 0 {
                    self.used_ports.remove(hp);
                }
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(p)
    }
}

#[derive(Debug)]
struct PodState {
    info: Arc<PodInfo>,
    node: String,
    assumed: bool,
}

/// The cluster as the scheduler sees it.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<PodKey, PodState>,
    /// Image name → number of nodes that have it.
    image_nodes: HashMap<String, usize>,
    node_count: usize,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub pvcs: HashMap<String, Arc<PersistentVolumeClaim>>,
    pub pvs: HashMap<String, Arc<PersistentVolume>>,
    pub pdbs: HashMap<String, Arc<PodDisruptionBudget>>,
    /// Indexes into `nodes`, in order, of the nodes with a Node object that are not cordoned,
    /// rebuilt by [`Cache::refresh_open`] after `open_stale` is set.
    open: Vec<u32>,
    open_stale: bool,
}

impl Cache {
    /// Every entry, including placeholders without a Node object (skip those with `node: None`).
    pub fn node_infos(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node_info(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Nodes with a Node object.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    pub fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    pub fn pods_with_affinity(&self) -> usize {
        self.pods_with_affinity
    }

    pub fn pods_with_required_anti_affinity(&self) -> usize {
        self.pods_with_required_anti_affinity
    }

    /// Rebuilds the list of [`Cache::open_nodes`] if a node was added, removed, cordoned or
    /// uncordoned since.
    pub fn refresh_open(&mut self) {
        if !self.open_stale {
            return;
        }
        self.open_stale = false;
        self.open.clear();
        self.open.extend(
            self.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.node.is_some() && !n.unschedulable)
                .map(|(i, _)| i as u32),
        );
    }

    /// Indexes into `node_infos()`, in order, of the nodes that are not cordoned, as of the
    /// last [`Cache::refresh_open`].
    pub fn open_nodes(&self) -> &[u32] {
        &self.open
    }

    /// Nodes with a Node object that are cordoned, as of the last [`Cache::refresh_open`].
    pub fn cordoned_count(&self) -> usize {
        self.node_count - self.open.len()
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.open_stale = true;
                self.nodes.push(NodeInfo::new(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    /// Drops the entry of `name` if it has neither a Node nor pods.
    fn prune(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].node.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        self.open_stale = true;
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    fn count_images(&mut self, images: &HashMap<String, i64>, add: bool) {
        for name in images.keys() {
            if add {
                *self.image_nodes.entry(name.clone()).or_default() += 1;
            } else if let Some(n) = self.image_nodes.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.image_nodes.remove(name);
                }
            }
        }
    }

    /// Adds or replaces a Node; returns the previous one.
    pub fn set_node(&mut self, node: Arc<Node>) -> Option<Arc<Node>> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let old_images = std::mem::take(&mut self.entry(&name).images);
        self.count_images(&old_images, false);
        let info = self.entry(&name);
        let old = info.node.take();
        let was_open = old.is_some() && !info.unschedulable;
        info.set_node(node);
        let open = !info.unschedulable;
        let new_images = info.images.clone();
        self.open_stale |= was_open != open;
        self.count_images(&new_images, true);
        if old.is_none() {
            self.node_count += 1;
        }
        old
    }

    pub fn remove_node(&mut self, name: &str) -> Option<Arc<Node>> {
        let i = *self.index.get(name)?;
        let info = &mut self.nodes[i];
        let old = info.node.take()?;
        info.taints = Vec::new();
        info.unschedulable = false;
        self.open_stale = true;
        let images = std::mem::take(&mut info.images);
        info.allocatable = Resource::default();
        self.count_images(&images, false);
        self.node_count -= 1;
        self.prune(name);
        Some(old)
    }

    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|n| n.node.is_some())
            .map(|n| n.name.as_str())
    }

    fn place(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) {
        self.remove_pod(&info.key);
        if info.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !info.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.entry(node).add_pod(info.clone());
        self.pods.insert(
            info.key.clone(),
            PodState {
                info,
                node: node.to_string(),
                assumed,
            },
        );
    }

    /// Counts `pod` on `node` before the binding is stored.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, true);
    }

    /// Undoes `assume_pod` after a failed binding; a pod already seen bound stays.
    pub fn forget_pod(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// The node a pod is counted on, bound or assumed.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|s| s.node.as_str())
    }

    pub fn pod(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(key).map(|s| &s.info)
    }

    /// Records a pod seen bound in the API (confirming an assumed one).
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name().map(str::to_string) else {
            return;
        };
        self.place(pod, &node, false);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let state = self.pods.remove(key)?;
        if state.info.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !state.info.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        if let Some(&i) = self.index.get(&state.node) {
            self.nodes[i].remove_pod(key);
            self.prune(&state.node);
        }
        Some(state.info)
    }

    /// Keys of every pod the cache counts.
    pub fn pod_keys(&self) -> impl Iterator<Item = &PodKey> {
        self.pods.keys()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for Nodes and Pods shared by the plugins' unit tests.

    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn node(name: &str, cpu: &str, mem: &str, pods: &str) -> Node {
        let alloc: BTreeMap<String, Quantity> = [
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
            ("pods".to_string(), Quantity(pods.into())),
        ]
        .into();
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(alloc.clone()),
                capacity: Some(alloc),
                ..NodeStatus::default()
            }),
        }
    }

    pub fn with_labels(mut n: Node, labels: &[(&str, &str)]) -> Node {
        let l = n.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in labels {
            l.insert(k.to_string(), v.to_string());
        }
        n
    }

    pub fn pod(name: &str, cpu: &str, mem: &str) -> Pod {
        let mut req = BTreeMap::new();
        if !cpu.is_empty() {
            req.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !mem.is_empty() {
            req.insert("memory".to_string(), Quantity(mem.into()));
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("busybox".into()),
                    resources: Some(ResourceRequirements {
                        requests: Some(req),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    pub fn labeled(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
        let l = p.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in labels {
            l.insert(k.to_string(), v.to_string());
        }
        p
    }

    pub fn on(mut p: Pod, node: &str) -> Pod {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(node.into());
        }
        p
    }

    pub fn info(p: Pod) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    /// A cache with `nodes` and the bound `pods`.
    pub fn cache(nodes: Vec<Node>, pods: Vec<Pod>) -> Cache {
        let mut c = Cache::default();
        for n in nodes {
            c.set_node(Arc::new(n));
        }
        for p in pods {
            c.add_or_update_pod(info(p));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut c = cache(vec![node("n1", "2", "4Gi", "10")], vec![]);
        let p = info(pod("p", "500m", "1Gi"));
        c.assume_pod(p.clone(), "n1");
        let n = c.node_info("n1").expect("node");
        assert_eq!(n.requested.milli_cpu, 500);
        assert_eq!(n.pods.len(), 1);
        assert!(c.is_assumed("default/p"));
        c.forget_pod("default/p");
        let n = c.node_info("n1").expect("node");
        assert_eq!(n.requested.milli_cpu, 0);
        assert!(n.pods.is_empty());
    }

    #[test]
    fn confirmed_pods_replace_assumed_ones() {
        let mut c = cache(vec![node("n1", "2", "4Gi", "10")], vec![]);
        c.assume_pod(info(pod("p", "500m", "1Gi")), "n1");
        c.add_or_update_pod(info(on(pod("p", "500m", "1Gi"), "n1")));
        assert!(!c.is_assumed("default/p"));
        c.forget_pod("default/p");
        assert_eq!(c.node_info("n1").expect("node").requested.milli_cpu, 500);
        assert_eq!(c.node_info("n1").expect("node").non_zero_requested.0, 500);
    }

    #[test]
    fn pods_on_unknown_nodes_keep_a_placeholder() {
        let mut c = cache(vec![], vec![on(pod("p", "1", ""), "later")]);
        assert_eq!(c.node_count(), 0);
        assert!(c.node_info("later").is_some_and(|n| n.node.is_none()));
        c.set_node(Arc::new(node("later", "2", "1Gi", "10")));
        assert_eq!(c.node_count(), 1);
        assert_eq!(
            c.node_info("later").expect("node").requested.milli_cpu,
            1000
        );
        c.remove_pod("default/p");
        c.remove_node("later");
        assert!(c.node_info("later").is_none());
        assert_eq!(c.node_infos().len(), 0);
    }
}
