//! Pod IPs for hollow nodes, out of the pod CIDR the server assigned to each node
//! (`spec.podCIDR`, set by the node IPAM controller): the agent never chooses ranges itself, so
//! any number of agent processes can share a cluster without handing out the same address.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A node never runs more pods than this, whatever the size of its range; it bounds the
/// per-node bitmap of a large range (a /16 would otherwise need 8 KiB per node).
const MAX_HOSTS: u32 = 1 << 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IpamError {
    #[error(
        "invalid pod cidr {0:?}: expected an ipv4 network of at least 4 addresses, such as 10.42.0.0/24"
    )]
    Cidr(String),
}

/// Why a pod got no address.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AllocError {
    #[error("the node has no pod cidr yet")]
    NoCidr,
    #[error("no pod address left on the node")]
    Full,
}

/// Parses `a.b.c.d/len` into (network address, prefix length); pods need at least a /30.
pub fn parse_cidr(cidr: &str) -> Result<(u32, u8), IpamError> {
    let bad = || IpamError::Cidr(cidr.to_string());
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 30 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(addr) & mask, len))
}

/// One node's range: offset 0 is the network, 1 the gateway, the last the broadcast address;
/// the rest go to pods.
#[derive(Debug, Clone)]
struct Block {
    cidr: String,
    base: u32,
    /// Addresses of the range the block uses (at most [`MAX_HOSTS`]).
    hosts: u32,
    used: Vec<u64>,
    live: u32,
    /// Where the next search starts, so a freed address is not handed out again at once.
    cursor: u32,
}

impl Block {
    fn new(cidr: &str) -> Result<Block, IpamError> {
        let (base, len) = parse_cidr(cidr)?;
        let hosts = (1u64 << (32 - len)).min(u64::from(MAX_HOSTS)) as u32;
        Ok(Block {
            cidr: cidr.to_string(),
            base,
            hosts,
            used: vec![0; hosts.div_ceil(64) as usize],
            live: 0,
            cursor: 2,
        })
    }
    fn first(&self) -> u32 {
        2
    }
    fn last(&self) -> u32 {
        self.hosts - 2
    }
    fn is_used(&self, host: u32) -> bool {
        self.used[(host / 64) as usize] & (1 << (host % 64)) != 0
    }
    fn set(&mut self, host: u32, used: bool) {
        let (word, bit) = ((host / 64) as usize, 1u64 << (host % 64));
        if used {
            self.used[word] |= bit;
        } else {
            self.used[word] &= !bit;
        }
    }
    fn next_after(&self, host: u32) -> u32 {
        if host >= self.last() {
            self.first()
        } else {
            host + 1
        }
    }
    /// The host offset of `ip` when it is a pod address of this block.
    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let off = u32::from(ip).checked_sub(self.base)?;
        (self.first()..=self.last()).contains(&off).then_some(off)
    }
}

/// The pod IPs of every hollow node of this agent, keyed by pod UID.
#[derive(Debug)]
pub struct PodIps {
    /// Per node index; `None` until the server assigned the node a pod CIDR.
    blocks: Vec<Option<Block>>,
    by_uid: HashMap<String, (usize, u32)>,
}

impl PodIps {
    /// No ranges yet for `nodes` nodes.
    pub fn new(nodes: usize) -> PodIps {
        PodIps {
            blocks: vec![None; nodes],
            by_uid: HashMap::new(),
        }
    }

    /// The pod CIDR node `node` allocates from, if it has one.
    pub fn cidr(&self, node: usize) -> Option<&str> {
        self.blocks.get(node)?.as_ref().map(|b| b.cidr.as_str())
    }

    /// Sets (or, with `None`, forgets) node `node`'s pod CIDR. Returns whether it changed; a
    /// change drops the node's addresses, so its pods are given new ones from the new range.
    pub fn set_cidr(&mut self, node: usize, cidr: Option<&str>) -> Result<bool, IpamError> {
        let Some(slot) = self.blocks.get_mut(node) else {
            return Ok(false);
        };
        if slot.as_ref().map(|b| b.cidr.as_str()) == cidr {
            return Ok(false);
        }
        *slot = match cidr {
            Some(c) => Some(Block::new(c)?),
            None => None,
        };
        self.by_uid.retain(|_, (n, _)| *n != node);
        Ok(true)
    }

    /// The pod's address on node `node`: the one it has already, `preferred` when that is in the
    /// node's range and free (a pod that kept its IP across an agent restart), or the next free one.
    pub fn allocate(
        &mut self,
        uid: &str,
        node: usize,
        preferred: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AllocError> {
        if let Some(&(n, host)) = self.by_uid.get(uid) {
            if n == node
                && let Some(Some(block)) = self.blocks.get(n)
            {
                return Ok(Ipv4Addr::from(block.base + host));
            }
            self.release(uid);
        }
        let block = self
            .blocks
            .get_mut(node)
            .and_then(Option::as_mut)
            .ok_or(AllocError::NoCidr)?;
        let wanted = preferred
            .and_then(|ip| block.offset(ip))
            .filter(|h| !block.is_used(*h));
        let host = match wanted {
            Some(h) => h,
            None => {
                let start = block.cursor.clamp(block.first(), block.last());
                let mut h = start;
                loop {
                    if !block.is_used(h) {
                        break h;
                    }
                    h = block.next_after(h);
                    if h == start {
                        return Err(AllocError::Full);
                    }
                }
            }
        };
        block.set(host, true);
        block.live += 1;
        block.cursor = block.next_after(host);
        self.by_uid.insert(uid.to_string(), (node, host));
        Ok(Ipv4Addr::from(block.base + host))
    }

    /// Gives the pod's address back.
    pub fn release(&mut self, uid: &str) {
        if let Some((n, host)) = self.by_uid.remove(uid)
            && let Some(Some(block)) = self.blocks.get_mut(n)
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
        self.blocks
            .get(node)
            .and_then(Option::as_ref)
            .map_or(0, |b| b.live)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_pods_fit_in() {
        assert_eq!(
            parse_cidr("10.42.7.9/24").unwrap(),
            (u32::from(Ipv4Addr::new(10, 42, 7, 0)), 24)
        );
        assert!(parse_cidr("10.42.0.0/28").is_ok());
        assert!(parse_cidr("10.42.0.0/31").is_err());
        assert!(parse_cidr("10.42.0.0").is_err());
        assert!(parse_cidr("fd00::/64").is_err());
    }

    #[test]
    fn pods_wait_for_the_node_cidr() {
        let mut ips = PodIps::new(2);
        assert_eq!(ips.allocate("a", 1, None), Err(AllocError::NoCidr));
        assert!(!ips.has("a"));
        assert_eq!(ips.set_cidr(1, Some("10.42.5.0/24")), Ok(true));
        assert_eq!(ips.set_cidr(1, Some("10.42.5.0/24")), Ok(false));
        assert_eq!(ips.cidr(1), Some("10.42.5.0/24"));
        assert_eq!(ips.allocate("a", 1, None), Ok(Ipv4Addr::new(10, 42, 5, 2)));
        assert_eq!(ips.allocate("b", 0, None), Err(AllocError::NoCidr));
        assert_eq!(
            ips.set_cidr(0, Some("bogus")),
            Err(IpamError::Cidr("bogus".into()))
        );
    }

    #[test]
    fn hands_out_unique_addresses_and_reuses_them_late() {
        let mut ips = PodIps::new(2);
        ips.set_cidr(1, Some("10.42.1.0/24")).unwrap();
        let a = ips.allocate("a", 1, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 42, 1, 2));
        assert_eq!(ips.allocate("a", 1, None), Ok(a), "stable per pod");
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
        let mut ips = PodIps::new(1);
        ips.set_cidr(0, Some("10.42.0.0/24")).unwrap();
        let p = Ipv4Addr::new(10, 42, 0, 100);
        assert_eq!(ips.allocate("x", 0, Some(p)), Ok(p));
        assert_ne!(ips.allocate("y", 0, Some(p)), Ok(p), "taken");
        assert_ne!(
            ips.allocate("z", 0, Some(Ipv4Addr::new(10, 9, 0, 5))),
            Ok(Ipv4Addr::new(10, 9, 0, 5))
        );
        for i in 0..250 {
            ips.allocate(&format!("f{i}"), 0, None).unwrap();
        }
        assert_eq!(ips.live(0), 253);
        assert_eq!(ips.allocate("full", 0, None), Err(AllocError::Full));
    }

    #[test]
    fn small_ranges_keep_network_gateway_and_broadcast_free() {
        let mut ips = PodIps::new(1);
        ips.set_cidr(0, Some("10.0.0.16/28")).unwrap();
        let got: Vec<Ipv4Addr> = (0..13)
            .map_while(|i| ips.allocate(&format!("p{i}"), 0, None).ok())
            .collect();
        assert_eq!(got.len(), 13);
        assert_eq!(got[0], Ipv4Addr::new(10, 0, 0, 18));
        assert_eq!(got[12], Ipv4Addr::new(10, 0, 0, 30));
        assert_eq!(ips.allocate("more", 0, None), Err(AllocError::Full));
    }

    #[test]
    fn a_new_range_moves_the_node_pods() {
        let mut ips = PodIps::new(1);
        ips.set_cidr(0, Some("10.42.0.0/24")).unwrap();
        ips.allocate("a", 0, None).unwrap();
        assert_eq!(ips.set_cidr(0, None), Ok(true));
        assert!(!ips.has("a"));
        assert_eq!(ips.allocate("a", 0, None), Err(AllocError::NoCidr));
        ips.set_cidr(0, Some("10.42.9.0/24")).unwrap();
        assert_eq!(ips.allocate("a", 0, None), Ok(Ipv4Addr::new(10, 42, 9, 2)));
        assert_eq!(ips.live(0), 1);
    }
}
