//! Service cluster IP and NodePort allocation. Each address is claimed in the store by
//! creating its `networking.k8s.io/v1` IPAddress object (as upstream's allocator has done since
//! 1.33), and each node port by creating a key of its own, so two API servers sharing one etcd
//! never hand out the same one. An in-memory set of what is in use is only a hint for picking.

use serde_json::{Value, json};
use skiff_api::status::{ApiError, Cause};
use skiff_store::{Store, StoreError};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use tokio::sync::Mutex;

pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;
const IP_PREFIX: &str = "/registry/networking.k8s.io/ipaddresses/";
/// Not a served resource: the claim on one node port.
const PORT_PREFIX: &str = "/registry/skiff.internal/nodeports/";

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("invalid service CIDR {0:?}")]
    Cidr(String),
    #[error("cannot read allocations: {0}")]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct Used {
    ips: HashSet<u32>,
    ports: HashSet<u16>,
}

pub struct Allocators {
    store: Store,
    base: u32,
    size: u32,
    used: Mutex<Used>,
}

pub fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, bits) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if !(8..=30).contains(&bits) {
        return None;
    }
    let size = 1u32 << (32 - bits);
    Some((u32::from(ip) & !(size - 1), size))
}

fn internal(e: StoreError) -> ApiError {
    ApiError::internal(format!("allocation store: {e}"))
}

fn service_name(svc: &Value) -> (&str, &str) {
    (
        svc.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        svc.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

fn invalid(svc: &Value, field: &str, value: Value, why: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        service_name(svc).1,
        vec![Cause::invalid(field, &value, why)],
    )
}

impl Allocators {
    pub async fn load(store: &Store, service_cidr: &str) -> Result<Allocators, AllocError> {
        let (base, size) =
            parse_cidr(service_cidr).ok_or_else(|| AllocError::Cidr(service_cidr.into()))?;
        let mut used = Used::default();
        for kv in store.range(IP_PREFIX, None, 0, 0).await?.kvs {
            if let Ok(ip) = kv.key[IP_PREFIX.len()..].parse::<Ipv4Addr>() {
                used.ips.insert(u32::from(ip));
            }
        }
        // Services stored before their addresses were claimed as objects still hold them.
        for kv in store
            .range("/registry/core/services/", None, 0, 0)
            .await?
            .kvs
        {
            if let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) {
                if let Some(ip) = svc
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Ipv4Addr>().ok())
                {
                    used.ips.insert(u32::from(ip));
                }
                for p in svc
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                        used.ports.insert(np as u16);
                    }
                }
            }
        }
        for kv in store.range(PORT_PREFIX, None, 0, 0).await?.kvs {
            if let Ok(p) = kv.key[PORT_PREFIX.len()..].parse::<u16>() {
                used.ports.insert(p);
            }
        }
        Ok(Allocators {
            store: store.clone(),
            base,
            size,
            used: Mutex::new(used),
        })
    }

    /// The first address of the range: the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    async fn claim_ip(&self, ip: u32, svc: &Value) -> Result<bool, ApiError> {
        let (ns, name) = service_name(svc);
        let ip_s = Ipv4Addr::from(ip).to_string();
        let obj = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {
                "name": ip_s,
                "uid": crate::objects::new_uid(),
                "creationTimestamp": crate::objects::now_rfc3339(),
                "generation": 1,
                "labels": {"ipaddress.kubernetes.io/ip-family": "IPv4", "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"},
            },
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": ns, "name": name}},
        });
        match self
            .store
            .create(&format!("{IP_PREFIX}{ip_s}"), crate::objects::encode(&obj))
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists) => Ok(false),
            Err(e) => Err(internal(e)),
        }
    }

    async fn claim_port(&self, port: u16, svc: &Value) -> Result<bool, ApiError> {
        let (ns, name) = service_name(svc);
        let body = serde_json::to_vec(&json!({"namespace": ns, "name": name})).unwrap_or_default();
        match self
            .store
            .create(&format!("{PORT_PREFIX}{port}"), body.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists) => Ok(false),
            Err(e) => Err(internal(e)),
        }
    }

    /// Allocates what a new Service needs, filling `spec.clusterIP(s)` and node ports in place.
    /// With `dry_run` nothing is claimed.
    pub async fn allocate(&self, svc: &mut Value, dry_run: bool) -> Result<(), ApiError> {
        let mut used = self.used.lock().await;
        let spec_type = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let mut claimed_ip = None;
        if spec_type != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ip = match requested.as_str() {
                "None" => None,
                "" => {
                    let mut got = None;
                    for candidate in self.candidates(&used) {
                        if dry_run || self.claim_ip(candidate, svc).await? {
                            got = Some(candidate);
                            break;
                        }
                        // Another server took it: remember and go on.
                        used.ips.insert(candidate);
                    }
                    Some(got.ok_or_else(|| {
                        ApiError::internal("failed to allocate a serviceIP: range is full")
                    })?)
                }
                s => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        invalid(
                            svc,
                            "spec.clusterIPs",
                            json!(s),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )
                    })?;
                    let n = u32::from(ip);
                    if n <= self.base || n >= self.base + self.size - 1 {
                        return Err(invalid(
                            svc,
                            "spec.clusterIPs",
                            json!(s),
                            "provided IP is not in the valid range. The range of valid IPs is the service CIDR",
                        ));
                    }
                    let free = if dry_run {
                        !used.ips.contains(&n)
                    } else {
                        self.claim_ip(n, svc).await?
                    };
                    if !free {
                        return Err(invalid(
                            svc,
                            "spec.clusterIPs",
                            json!(s),
                            "provided IP is already allocated",
                        ));
                    }
                    Some(n)
                }
            };
            let ip_str = ip
                .map(|n| Ipv4Addr::from(n).to_string())
                .unwrap_or_else(|| "None".into());
            svc["spec"]["clusterIP"] = Value::String(ip_str.clone());
            svc["spec"]["clusterIPs"] = json!([ip_str]);
            svc["spec"]["ipFamilies"] = json!(["IPv4"]);
            if svc.pointer("/spec/ipFamilyPolicy").is_none() {
                svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            }
            if let (Some(n), false) = (ip, dry_run) {
                used.ips.insert(n);
                claimed_ip = Some(n);
            }
        }
        if spec_type == "NodePort" || spec_type == "LoadBalancer" {
            let mut taken_here: Vec<u16> = Vec::new();
            let result = self
                .allocate_ports(svc, &mut used, &mut taken_here, &HashSet::new(), dry_run)
                .await;
            if let Err(e) = result {
                // Give back what this request claimed before failing.
                drop(used);
                if !dry_run {
                    for p in taken_here {
                        self.unclaim_port(p).await;
                    }
                    if let Some(n) = claimed_ip {
                        self.unclaim_ip(n).await;
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn allocate_ports(
        &self,
        svc: &mut Value,
        used: &mut Used,
        taken_here: &mut Vec<u16>,
        keep: &HashSet<u16>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let count = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let requested = svc
                .pointer(&format!("/spec/ports/{i}/nodePort"))
                .and_then(Value::as_u64);
            let port = match requested {
                Some(np) if keep.contains(&(np as u16)) && !taken_here.contains(&(np as u16)) => {
                    // Already this Service's.
                    taken_here.push(np as u16);
                    continue;
                }
                Some(np) => {
                    let np = np as u16;
                    let free = !taken_here.contains(&np)
                        && if dry_run {
                            !used.ports.contains(&np)
                        } else {
                            self.claim_port(np, svc).await?
                        };
                    if !free {
                        return Err(invalid(
                            svc,
                            &format!("spec.ports[{i}].nodePort"),
                            json!(np),
                            "provided port is already allocated",
                        ));
                    }
                    np
                }
                None => {
                    let span = (*NODE_PORT_RANGE.end() - *NODE_PORT_RANGE.start()) as usize + 1;
                    let start = rand::random::<u16>() as usize % span;
                    let mut got = None;
                    for off in 0..span {
                        let np = *NODE_PORT_RANGE.start() + ((start + off) % span) as u16;
                        if used.ports.contains(&np) || taken_here.contains(&np) {
                            continue;
                        }
                        if dry_run || self.claim_port(np, svc).await? {
                            got = Some(np);
                            break;
                        }
                        used.ports.insert(np);
                    }
                    let np = got.ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                    svc["spec"]["ports"][i]["nodePort"] = json!(np);
                    np
                }
            };
            if !dry_run {
                used.ports.insert(port);
            }
            taken_here.push(port);
        }
        Ok(())
    }

    /// An update of a NodePort or LoadBalancer Service: keeps the ports it holds, claims the
    /// ones it names anew and allocates ports it leaves unset. Returns the newly claimed ports
    /// (to give back if the write fails) and the old ones it no longer uses (to give back once
    /// the write succeeded).
    pub async fn update_ports(
        &self,
        old: &Value,
        new: &mut Value,
        dry_run: bool,
    ) -> Result<(Vec<u16>, Vec<u16>), ApiError> {
        let ports_of = |svc: &Value| -> HashSet<u16> {
            svc.pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .map(|p| p as u16)
                .collect()
        };
        let held = ports_of(old);
        let ty = new
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let mut now_held: Vec<u16> = Vec::new();
        if ty == "NodePort" || ty == "LoadBalancer" {
            let mut used = self.used.lock().await;
            if let Err(e) = self
                .allocate_ports(new, &mut used, &mut now_held, &held, dry_run)
                .await
            {
                drop(used);
                if !dry_run {
                    for p in now_held.iter().filter(|p| !held.contains(p)) {
                        self.unclaim_port(*p).await;
                    }
                }
                return Err(e);
            }
        }
        let claimed = now_held
            .iter()
            .copied()
            .filter(|p| !held.contains(p))
            .collect();
        let dropped = if dry_run {
            Vec::new()
        } else {
            held.into_iter().filter(|p| !now_held.contains(p)).collect()
        };
        Ok((claimed, dropped))
    }

    /// Gives node ports back.
    pub async fn release_ports(&self, ports: &[u16]) {
        for p in ports {
            self.unclaim_port(*p).await;
        }
    }

    /// Free addresses to try, starting at a random one. Skips the network address, .1
    /// (kubernetes) and .10 (DNS), which are only given when asked for, and broadcast.
    fn candidates(&self, used: &Used) -> Vec<u32> {
        let usable = self.size.saturating_sub(2).max(1);
        let start = rand::random::<u32>() % usable;
        (0..usable)
            .map(|i| self.base + 1 + (start + i) % usable)
            .filter(|n| *n != self.base + 1 && *n != self.base + 10 && !used.ips.contains(n))
            .take(64)
            .collect()
    }

    async fn unclaim_ip(&self, n: u32) {
        let key = format!("{IP_PREFIX}{}", Ipv4Addr::from(n));
        if let Err(e) = self.store.delete(&key, None).await
            && !matches!(e, StoreError::NotFound)
        {
            tracing::warn!(%key, error = %e, "cannot release a service IP");
        }
        self.used.lock().await.ips.remove(&n);
    }

    async fn unclaim_port(&self, p: u16) {
        let key = format!("{PORT_PREFIX}{p}");
        if let Err(e) = self.store.delete(&key, None).await
            && !matches!(e, StoreError::NotFound)
        {
            tracing::warn!(%key, error = %e, "cannot release a node port");
        }
        self.used.lock().await.ports.remove(&p);
    }

    /// Releases what a deleted Service held.
    pub async fn release(&self, svc: &Value) {
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        {
            self.unclaim_ip(u32::from(ip)).await;
        }
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                self.unclaim_port(np as u16).await;
            }
        }
    }
}
