//! Service cluster IP and NodePort allocation: each handed out once, released when the Service goes.

use serde_json::Value;
use skiff_api::status::ApiError;
use skiff_store::Store;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use tokio::sync::Mutex;

pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error("invalid service CIDR {0:?}")]
    Cidr(String),
    #[error("cannot read services: {0}")]
    Store(#[from] skiff_store::StoreError),
}

struct Used {
    ips: HashSet<u32>,
    ports: HashSet<u16>,
}

pub struct Allocators {
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

impl Allocators {
    pub async fn load(store: &Store, service_cidr: &str) -> Result<Allocators, AllocError> {
        let (base, size) =
            parse_cidr(service_cidr).ok_or_else(|| AllocError::Cidr(service_cidr.into()))?;
        let mut used = Used {
            ips: HashSet::new(),
            ports: HashSet::new(),
        };
        let services = store.range("/registry/core/services/", None, 0, 0).await?;
        for kv in services.kvs {
            if let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) {
                record(&mut used, &svc);
            }
        }
        Ok(Allocators {
            base,
            size,
            used: Mutex::new(used),
        })
    }

    /// The first address of the range: the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// The tenth address: cluster DNS.
    pub fn dns_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 10)
    }

    /// Allocates what a new Service needs, filling `spec.clusterIP(s)` and node ports in place.
    pub async fn allocate(&self, svc: &mut Value, dry_run: bool) -> Result<(), ApiError> {
        let mut used = self.used.lock().await;
        let spec_type = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if spec_type != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ip = match requested.as_str() {
                "None" => None,
                "" => Some(self.pick_ip(&used).ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?),
                s => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        invalid_ip(
                            svc,
                            s,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )
                    })?;
                    let n = u32::from(ip);
                    if n <= self.base || n >= self.base + self.size - 1 {
                        return Err(invalid_ip(
                            svc,
                            s,
                            "provided IP is not in the valid range. The range of valid IPs is the service CIDR",
                        ));
                    }
                    if used.ips.contains(&n) {
                        return Err(invalid_ip(svc, s, "provided IP is already allocated"));
                    }
                    Some(n)
                }
            };
            let ip_str = ip
                .map(|n| Ipv4Addr::from(n).to_string())
                .unwrap_or_else(|| "None".into());
            svc["spec"]["clusterIP"] = Value::String(ip_str.clone());
            svc["spec"]["clusterIPs"] = serde_json::json!([ip_str]);
            if ip.is_some() || requested == "None" {
                svc["spec"]["ipFamilies"] = serde_json::json!(["IPv4"]);
                if svc.pointer("/spec/ipFamilyPolicy").is_none() {
                    svc["spec"]["ipFamilyPolicy"] = serde_json::json!("SingleStack");
                }
            }
            if let (Some(n), false) = (ip, dry_run) {
                used.ips.insert(n);
            }
        }
        if spec_type == "NodePort" || spec_type == "LoadBalancer" {
            let mut taken_here = Vec::new();
            if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    match p.get("nodePort").and_then(Value::as_u64) {
                        Some(np) => {
                            let np = np as u16;
                            if used.ports.contains(&np) || taken_here.contains(&np) {
                                return Err(ApiError::invalid(
                                    "",
                                    "Service",
                                    "",
                                    vec![skiff_api::status::Cause::invalid(
                                        "spec.ports[0].nodePort",
                                        &Value::from(np),
                                        "provided port is already allocated",
                                    )],
                                ));
                            }
                            taken_here.push(np);
                        }
                        None => {
                            let np = NODE_PORT_RANGE
                                .clone()
                                .cycle()
                                .skip(rand::random::<u16>() as usize % 2768)
                                .take(2768)
                                .find(|n| !used.ports.contains(n) && !taken_here.contains(n))
                                .ok_or_else(|| {
                                    ApiError::internal(
                                        "failed to allocate a nodePort: range is full",
                                    )
                                })?;
                            p["nodePort"] = Value::from(np);
                            taken_here.push(np);
                        }
                    }
                }
            }
            if !dry_run {
                used.ports.extend(taken_here);
            }
        }
        Ok(())
    }

    fn pick_ip(&self, used: &Used) -> Option<u32> {
        // Skip the network address, .1 (kubernetes) and .10 (DNS) unless asked for explicitly, and broadcast.
        let usable = self.size.saturating_sub(2);
        let start = rand::random::<u32>() % usable.max(1);
        (0..usable)
            .map(|i| self.base + 1 + (start + i) % usable)
            .find(|n| *n != self.base + 1 && *n != self.base + 10 && !used.ips.contains(n))
    }

    /// Releases what a deleted Service held.
    pub async fn release(&self, svc: &Value) {
        let mut used = self.used.lock().await;
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        {
            used.ips.remove(&u32::from(ip));
        }
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                used.ports.remove(&(np as u16));
            }
        }
    }
}

fn record(used: &mut Used, svc: &Value) {
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

fn invalid_ip(svc: &Value, ip: &str, why: &str) -> ApiError {
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![skiff_api::status::Cause::invalid(
            "spec.clusterIPs",
            &Value::from(ip),
            why,
        )],
    )
}
