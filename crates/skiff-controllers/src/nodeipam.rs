//! Node IPAM controller: gives every node a pod CIDR (`spec.podCIDR`) carved out of the
//! cluster CIDR, as kube-controller-manager does with --allocate-node-cidrs.

use crate::events::{EventType, Recorder};
use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::Node;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The cluster CIDR and the size of each node's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    pub base: u32,
    pub prefix: u8,
    pub node_prefix: u8,
}

impl ClusterCidr {
    /// Parses `10.42.0.0/16` (nodes get /24s, or a quarter of smaller ranges' bits).
    pub fn parse(cidr: &str) -> Option<ClusterCidr> {
        let (ip, len) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|p| *p <= 30)?;
        let node_prefix = if prefix <= 24 {
            24
        } else {
            (prefix + 2).min(30)
        };
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(ClusterCidr {
            base: u32::from(ip) & mask,
            prefix,
            node_prefix,
        })
    }

    pub fn capacity(&self) -> u32 {
        1u32 << (self.node_prefix - self.prefix)
    }

    pub fn subnet(&self, i: u32) -> String {
        let ip = Ipv4Addr::from(self.base + (i << (32 - self.node_prefix)));
        format!("{ip}/{}", self.node_prefix)
    }

    /// The index of a subnet of this range, if it is one.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, len) = cidr.split_once('/')?;
        if len.parse::<u8>().ok()? != self.node_prefix {
            return None;
        }
        let ip = u32::from(ip.parse::<Ipv4Addr>().ok()?);
        let off = ip.checked_sub(self.base)?;
        let i = off >> (32 - self.node_prefix);
        (i < self.capacity()).then_some(i)
    }
}

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    range: ClusterCidr,
    /// Subnets the cache shows assigned, kept current by the node handler (no pass over
    /// every node per sync).
    used: Mutex<BTreeSet<u32>>,
    /// Subnets handed out but perhaps not yet in the cache.
    claimed: Mutex<BTreeSet<u32>>,
    recorder: Recorder,
}

pub async fn run(informers: Arc<Informers>, range: ClusterCidr, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        nodes: informers.get::<Node>(),
        range,
        used: Mutex::default(),
        claimed: Mutex::default(),
        recorder: Recorder::new(informers.client().clone(), "node-ipam-controller"),
    });
    let queue = Queue::new();
    let changes = ctx.nodes.subscribe();
    ctx.nodes.synced().await;
    {
        let mut used = ctx.used.lock().unwrap_or_else(PoisonError::into_inner);
        for n in ctx.nodes.list() {
            if let Some(i) = index_of(&range, &n) {
                used.insert(i);
            }
            queue.add(Key::of(&*n));
        }
    }
    let ctx_fed = ctx.clone();
    let fed = runtime::enqueue_changes(
        changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<Node>| {
            let mut used = ctx_fed.used.lock().unwrap_or_else(PoisonError::into_inner);
            match c {
                Change::Applied { old, new } => {
                    if let Some(i) = old.as_ref().and_then(|o| index_of(&range, o)) {
                        used.remove(&i);
                    }
                    if let Some(i) = index_of(&range, new) {
                        used.insert(i);
                    }
                    Some(Key::of(&**new))
                }
                Change::Deleted(gone) => {
                    if let Some(i) = index_of(&range, gone) {
                        used.remove(&i);
                    }
                    None
                }
            }
        },
    );
    let ctx2 = ctx.clone();
    // One worker: allocation decisions must not race each other.
    let workers = runtime::run_workers("node-ipam-controller", queue, 1, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(fed, workers);
}

fn index_of(range: &ClusterCidr, n: &Node) -> Option<u32> {
    n.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .and_then(|c| range.index_of(c))
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(node) = ctx.nodes.get("", &key.name) else {
        return Ok(None);
    };
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        return Ok(None);
    }
    let next = {
        let used = ctx.used.lock().unwrap_or_else(PoisonError::into_inner);
        let mut claimed = ctx.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        // Claims the cache has caught up with are no longer needed.
        claimed.retain(|i| !used.contains(i));
        let next = (0..ctx.range.capacity()).find(|i| !used.contains(i) && !claimed.contains(i));
        if let Some(i) = next {
            claimed.insert(i);
        }
        next
    };
    let Some(i) = next else {
        ctx.recorder
            .record(
                &node.object_ref(&()),
                EventType::Normal,
                "CIDRNotAvailable",
                &format!("Node {} status is now: CIDRNotAvailable", key.name),
            )
            .await;
        return Ok(Some(Duration::from_secs(30)));
    };
    let cidr = ctx.range.subnet(i);
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            ctx.recorder
                .record(
                    &node.object_ref(&()),
                    EventType::Normal,
                    "CIDRAssignmentSucceeded",
                    &format!("Assigned CIDR {cidr} to node {}", key.name),
                )
                .await;
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => {
            ctx.claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&i);
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_of_a_cluster_range() {
        let r = ClusterCidr::parse("10.42.0.0/16").expect("valid");
        assert_eq!(r.capacity(), 256);
        assert_eq!(r.subnet(0), "10.42.0.0/24");
        assert_eq!(r.subnet(5), "10.42.5.0/24");
        assert_eq!(r.index_of("10.42.5.0/24"), Some(5));
        assert_eq!(r.index_of("10.43.5.0/24"), None);
        assert_eq!(r.index_of("10.42.5.0/25"), None);
        let small = ClusterCidr::parse("10.0.0.0/26").expect("valid");
        assert_eq!(small.node_prefix, 28);
        assert_eq!(small.capacity(), 4);
        assert!(ClusterCidr::parse("10.0.0.0/31").is_none());
        assert!(ClusterCidr::parse("nonsense").is_none());
    }
}
