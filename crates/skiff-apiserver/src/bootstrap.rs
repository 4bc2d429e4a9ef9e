//! What the API server keeps in place by itself, as upstream's bootstrap and endpoint
//! reconciler controllers do, every ten seconds: the system namespaces, the `kubernetes`
//! Service (recreated when deleted) and the default ServiceCIDR, an identity Lease per API server in kube-system, the
//! default RBAC roles (once per start, see `rbac_defaults`), and the
//! `kubernetes` Endpoints and EndpointSlice listing the address of every API server whose
//! Lease is fresh, so that pods reach the API through the Service.

use crate::rest::{create_object, get_object, update_object};
use crate::server::ApiServer;
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_api::status::ApiError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the server checks what it keeps.
const PERIOD: Duration = Duration::from_secs(10);
/// How long an API server's Lease keeps its address in the endpoints without renewal.
const LEASE_SECONDS: i64 = 30;
const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
const ADDRESS_ANNOTATION: &str = "skiff.io/advertise-address";
const MANAGER: &str = "kube-apiserver";

fn info(
    group: &str,
    version: &str,
    plural: &str,
) -> Result<&'static registry::ResourceInfo, ApiError> {
    registry::find(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))
}

/// Runs until `cancel`: one pass now, then every ten seconds.
pub async fn run(server: Arc<ApiServer>, identity: String, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rbac_defaults = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile(&server, &identity).await {
            tracing::warn!(error = %e.message, "cannot keep the system namespaces, the kubernetes service or its endpoints");
        }
        // The default RBAC objects: created once per start (after the system namespaces).
        if !rbac_defaults {
            match crate::rbac_defaults::ensure(&server).await {
                Ok(()) => rbac_defaults = true,
                Err(e) => {
                    tracing::warn!(error = %e.message, "cannot create the default RBAC roles")
                }
            }
        }
    }
}

async fn reconcile(server: &Arc<ApiServer>, identity: &str) -> Result<(), ApiError> {
    crate::rest::bootstrap(server).await?;
    keep_service_cidr(server).await?;
    let Some((ip, port)) = advertised(&server.config.advertise_address) else {
        return Ok(());
    };
    renew_lease(server, identity, ip, port).await?;
    let mut addresses = live_addresses(server).await?;
    if !addresses.contains(&ip) {
        addresses.push(ip);
    }
    addresses.sort();
    addresses.dedup();
    keep_endpoints(server, &addresses, port).await?;
    keep_endpoint_slice(server, &addresses, port).await
}

fn advertised(address: &str) -> Option<(IpAddr, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.parse().ok()?, port.parse().ok()?))
}

fn lease_name(ip: IpAddr, port: u16) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{ip}:{port}").as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("apiserver-{hex}")
}

fn micro_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The default ServiceCIDR `kubernetes`: the range Service cluster IPs come from.
async fn keep_service_cidr(server: &Arc<ApiServer>) -> Result<(), ApiError> {
    let cidrs = info("networking.k8s.io", "v1", "servicecidrs")?;
    let want = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": [server.config.service_cidr]},
    });
    // Created when missing; its range is the server's flag, not changed here.
    keep(server, cidrs, None, want, |_, _| true).await
}

/// This server's identity Lease, renewed with its address.
async fn renew_lease(
    server: &Arc<ApiServer>,
    identity: &str,
    ip: IpAddr,
    port: u16,
) -> Result<(), ApiError> {
    let leases = info("coordination.k8s.io", "v1", "leases")?;
    let name = lease_name(ip, port);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": {IDENTITY_LABEL: "kube-apiserver"},
            "annotations": {ADDRESS_ANNOTATION: format!("{ip}:{port}")},
        },
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_now(),
        },
    });
    // Renewed on every pass: never the same.
    keep(server, leases, Some("kube-system"), lease, |_, _| false).await
}

/// The addresses of the API servers whose Leases are fresh.
async fn live_addresses(server: &Arc<ApiServer>) -> Result<Vec<IpAddr>, ApiError> {
    let leases = info("coordination.k8s.io", "v1", "leases")?;
    let prefix = crate::objects::prefix(leases, Some("kube-system"));
    let listed = server
        .store
        .range(&prefix, None, 0, 0)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let now = chrono::Utc::now().timestamp();
    let mut out = Vec::new();
    for kv in listed.kvs {
        let Ok(lease) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if lease.pointer(&format!(
            "/metadata/labels/{}",
            IDENTITY_LABEL.replace('/', "~1")
        )) != Some(&json!("kube-apiserver"))
        {
            continue;
        }
        let renewed = lease
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp());
        let duration = lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(LEASE_SECONDS);
        if renewed.is_none_or(|t| t + duration < now) {
            continue;
        }
        if let Some((ip, _)) = lease
            .pointer(&format!(
                "/metadata/annotations/{}",
                ADDRESS_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(advertised)
        {
            out.push(ip);
        }
    }
    Ok(out)
}

/// Writes `want` as `name` (in `ns`) unless what is stored already says that (`same`
/// compares the stored object with `want`); a write that loses a race waits for the next pass.
async fn keep(
    server: &Arc<ApiServer>,
    resource: &'static registry::ResourceInfo,
    ns: Option<&str>,
    want: Value,
    same: impl Fn(&Value, &Value) -> bool,
) -> Result<(), ApiError> {
    let name = want
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match get_object(server, resource, ns, &name).await {
        Ok(current) if same(&current, &want) => Ok(()),
        Ok(current) => {
            let mut next = want;
            next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            update_object(server, resource, ns, &name, None, next, false, MANAGER)
                .await
                .map(|_| ())
        }
        Err(e) if e.code == 404 => create_object(server, resource, ns, want, false, Some(MANAGER))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
    .or_else(|e| if e.code == 409 { Ok(()) } else { Err(e) })
}

async fn keep_endpoints(
    server: &Arc<ApiServer>,
    addresses: &[IpAddr],
    port: u16,
) -> Result<(), ApiError> {
    let endpoints = info("", "v1", "endpoints")?;
    let ips: Vec<Value> = addresses
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    let want = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            // The API server writes the slice itself; nothing mirrors these.
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": ips, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    keep(server, endpoints, Some("default"), want, |cur, want| {
        cur.get("subsets") == want.get("subsets")
            && cur.pointer("/metadata/labels") == want.pointer("/metadata/labels")
    })
    .await
}

async fn keep_endpoint_slice(
    server: &Arc<ApiServer>,
    addresses: &[IpAddr],
    port: u16,
) -> Result<(), ApiError> {
    let slices = info("discovery.k8s.io", "v1", "endpointslices")?;
    let family = if addresses.iter().all(IpAddr::is_ipv4) {
        "IPv4"
    } else {
        "IPv6"
    };
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let want = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    keep(server, slices, Some("default"), want, |cur, want| {
        cur.get("endpoints") == want.get("endpoints")
            && cur.get("ports") == want.get("ports")
            && cur.get("addressType") == want.get("addressType")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_parse() {
        assert_eq!(
            advertised("10.0.0.5:6443"),
            Some(("10.0.0.5".parse().expect("ip"), 6443))
        );
        assert_eq!(
            advertised("[::1]:6443"),
            Some(("::1".parse().expect("ip"), 6443))
        );
        assert_eq!(advertised("example.com:6443"), None);
        assert_ne!(
            lease_name("10.0.0.5".parse().expect("ip"), 6443),
            lease_name("10.0.0.6".parse().expect("ip"), 6443)
        );
    }
}
