//! Pod IPs for hollow nodes: one /24 per node carved out of the cluster CIDR by node index.

use std::collections::HashMap;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IpamError {
    #[error("invalid cluster cidr {0:?}: expected an ipv4 network such as 10.42.0.0/16")]
    Cidr(String),
    #[error(
        "cluster cidr {cidr} holds {fits} /24 node blocks, not {wanted}: pass a larger --cluster-cidr"
    )]
    TooSmall {
        cidr: String,
        fits: u64,
        wanted: u64,
    },
}

/// Parses `a.b.c.d/len` into (network address, prefix length).
pub fn parse_cidr(cidr: &str) -> Result<(u32, u8), IpamError> {
    let bad = || IpamError::Cidr(cidr.to_string());
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 24 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(addr) & mask, len))
}

/// The i-th /24 of the network, as the node's `spec.podCIDR`.
pub fn node_cidr(network: u32, index: u32) -> String {
    format!("{}/24", Ipv4Addr::from(network + (index << 8)))
}

/// One node's /24: .1 is the gateway, .2 to .254 go to pods.
#[derive(Debug, Clone)]
struct Block {
    base: u32,
    used: [u64; 4],
    live: u32,
    /// Where the next search starts, so a freed address is not handed out again at once.
    cursor: u8,
}

impl Block {
    fn is_used(&self, host: u8) -> bool {
        self.used[usize::from(host / 64)] & (1 << (host % 64)) != 0
    }
    fn set(&mut self, host: u8, used: bool) {
        let (word, bit) = (usize::from(host / 64), 1u64 << (host % 64));
        if used {
            self.used[word] |= bit;
        } else {
            self.used[word] &= !bit;
        }
    }
}

/// The pod IPs of every hollow node of this agent, keyed by pod UID.
#[derive(Debug)]
pub struct PodIps {
    blocks: Vec<Block>,
    by_uid: HashMap<String, (usize, u8)>,
}

impl PodIps {
    /// Blocks for `nodes` nodes out of `cidr`.
    pub fn new(cidr: &str, nodes: usize) -> Result<PodIps, IpamError> {
        let (network, len) = parse_cidr(cidr)?;
        let fits = 1u64 << (24 - len);
        if nodes as u64 > fits {
            return Err(IpamError::TooSmall {
                cidr: cidr.to_string(),
                fits,
                wanted: nodes as u64,
            });
        }
        let blocks = (0..nodes as u32)
            .map(|i| Block {
                base: network + (i << 8),
                used: [0; 4],
                live: 0,
                cursor: 2,
            })
            .collect();
        Ok(PodIps {
            blocks,
            by_uid: HashMap::new(),
        })
    }

    /// The pod's address on node `node`: the one it has already, `preferred` when that is in the
    /// node's block and free (a pod that kept its IP across an agent restart), or the next free one.
    /// `None` when the block is full.
    pub fn allocate(
        &mut self,
        uid: &str,
        node: usize,
        preferred: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        if let Some(&(n, host)) = self.by_uid.get(uid) {
            if n == node {
                return Some(Ipv4Addr::from(self.blocks[n].base + u32::from(host)));
            }
            self.release(uid);
        }
        let block = self.blocks.get_mut(node)?;
        let wanted = preferred
            .map(u32::from)
            .filter(|ip| ip & !0xff == block.base)
            .map(|ip| (ip & 0xff) as u8)
            .filter(|h| (2..=254).contains(h) && !block.is_used(*h));
        let host = match wanted {
            Some(h) => h,
            None => {
                let start = block.cursor;
                let mut h = start;
                loop {
                    if !block.is_used(h) {
                        break h;
                    }
                    h = if h >= 254 { 2 } else { h + 1 };
                    if h == start {
                        return None;
                    }
                }
            }
        };
        block.set(host, true);
        block.live += 1;
        block.cursor = if host >= 254 { 2 } else { host + 1 };
        self.by_uid.insert(uid.to_string(), (node, host));
        Some(Ipv4Addr::from(block.base + u32::from(host)))
    }

    /// Gives the pod's address back.
    pub fn release(&mut self, uid: &str) {
        if let Some((n, host)) = self.by_uid.remove(uid)
            && let Some(block) = self.blocks.get_mut(n)
        {
            block.set(host, false);
            block.live -= 1;
        }
    }

    pub fn has(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Pods holding an address on `node`.
    pub fn live(&self, node: usize) -> u32 {
        self.blocks.get(node).map_or(0, |b| b.live)
    }

    /// UIDs holding addresses, to drop the ones whose pods are gone.
    pub fn uids(&self) -> Vec<String> {
        self.by_uid.keys().cloned().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn carves_one_block_per_node() {
        let (net, len) = parse_cidr("10.42.0.0/16").unwrap();
        assert_eq!(len, 16);
        assert_eq!(node_cidr(net, 0), "10.42.0.0/24");
        assert_eq!(node_cidr(net, 7), "10.42.7.0/24");
        assert!(matches!(
            PodIps::new("10.42.0.0/16", 257),
            Err(IpamError::TooSmall { fits: 256, .. })
        ));
        assert!(PodIps::new("10.0.0.0/8", 5000).is_ok());
        assert!(parse_cidr("10.42.0.0").is_err());
    }

    #[test]
    fn hands_out_unique_addresses_and_reuses_them_late() {
        let mut ips = PodIps::new("10.42.0.0/16", 2).unwrap();
        let a = ips.allocate("a", 1, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 42, 1, 2));
        assert_eq!(ips.allocate("a", 1, None), Some(a), "stable per pod");
        let b = ips.allocate("b", 1, None).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 42, 1, 3));
        ips.release("a");
        let c = ips.allocate("c", 1, None).unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 42, 1, 4), "a freed address waits");
        assert_eq!(ips.live(1), 2);
        assert_eq!(ips.live(0), 0);
    }

    #[test]
    fn adopts_preferred_addresses_and_fills_up() {
        let mut ips = PodIps::new("10.42.0.0/16", 1).unwrap();
        let p = Ipv4Addr::new(10, 42, 0, 100);
        assert_eq!(ips.allocate("x", 0, Some(p)), Some(p));
        assert_ne!(ips.allocate("y", 0, Some(p)), Some(p), "taken");
        assert_ne!(
            ips.allocate("z", 0, Some(Ipv4Addr::new(10, 9, 0, 5))),
            Some(Ipv4Addr::new(10, 9, 0, 5))
        );
        for i in 0..250 {
            ips.allocate(&format!("f{i}"), 0, None);
        }
        assert_eq!(ips.live(0), 253);
        assert_eq!(ips.allocate("full", 0, None), None);
    }
}
