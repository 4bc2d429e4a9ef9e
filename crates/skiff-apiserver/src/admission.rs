//! The LimitRanger and ResourceQuota admission plugins. Each namespace's LimitRanges and
//! ResourceQuotas are followed through the watch cache, so that a create in a namespace
//! without them costs one map lookup. A quota is charged by rewriting its stored status
//! atomically (check and add in one store write), as upstream's plugin updates the quota's
//! status before the object is stored; the resource quota controller recounts from there.

use crate::follow::Followed;
use crate::server::ApiServer;
use serde_json::Value;
use skiff_api::quota::{self, ResourceList};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use std::sync::{Arc, Mutex, PoisonError};

pub const LIMIT_RANGE_PREFIX: &str = "/registry/core/limitranges/";
pub const RESOURCE_QUOTA_PREFIX: &str = "/registry/core/resourcequotas/";

/// Namespaced objects followed whole, by `namespace/name`.
pub type Namespaced = Followed<Value>;

pub fn extract(v: &Value) -> Option<(String, Value)> {
    let ns = v.pointer("/metadata/namespace").and_then(Value::as_str)?;
    let name = v.pointer("/metadata/name").and_then(Value::as_str)?;
    Some((format!("{ns}/{name}"), v.clone()))
}

/// The followed objects of namespace `ns`, by name.
fn in_namespace(f: &Namespaced, ns: &str) -> Vec<Value> {
    let mut found: Vec<(String, Value)> = f.with_all(|all| {
        all.iter()
            .filter(|(k, _)| k.strip_prefix(ns).is_some_and(|rest| rest.starts_with('/')))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, v)| v).collect()
}

fn is(info: &ResourceInfo, plural: &str) -> bool {
    info.group.is_empty() && info.plural == plural
}

/// LimitRanger's mutation of a new pod: default requests and limits. Returns whether the
/// pod changed.
pub fn default_limits(server: &ApiServer, info: &ResourceInfo, ns: &str, obj: &mut Value) -> bool {
    if !is(info, "pods") {
        return false;
    }
    let ranges = in_namespace(&server.limit_ranges, ns);
    !ranges.is_empty() && skiff_api::limitrange::default_pod(&ranges, obj)
}

/// LimitRanger's validation of a new pod or claim, as 403 Forbidden with upstream's message.
pub fn check_limits(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    let claims = is(info, "persistentvolumeclaims");
    if !is(info, "pods") && !claims {
        return Ok(());
    }
    let ranges = in_namespace(&server.limit_ranges, ns);
    if ranges.is_empty() {
        return Ok(());
    }
    let errs = if claims {
        skiff_api::limitrange::validate_claim(&ranges, obj)
    } else {
        skiff_api::limitrange::validate_pod(&ranges, obj)
    };
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden_object(
        info.group,
        info.plural,
        name,
        &skiff_api::limitrange::aggregate(&errs),
    ))
}

/// What a create charged to which quotas, to take back if the create then fails.
#[derive(Default)]
pub struct Charged(Vec<(String, ResourceList)>);

impl Charged {
    pub async fn release(self, server: &ApiServer) {
        for (key, usage) in self.0 {
            let rewrite = move |kv: &skiff_store::KeyValue| {
                let mut q: Value = serde_json::from_slice(&kv.value).ok()?;
                quota::release(&mut q, &usage);
                serde_json::to_vec(&q).ok().map(bytes::Bytes::from)
            };
            if let Err(e) = server.store.update_with(&key, rewrite).await {
                tracing::debug!(%key, error = %e, "could not release a quota charge");
            }
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether quotas are charged when an object of `info` is updated, as upstream's evaluators
/// handle updates: a service's type and ports, a claim's size. Other objects are charged
/// when created only.
pub fn charged_on_update(info: &ResourceInfo) -> bool {
    is(info, "services") || is(info, "persistentvolumeclaims")
}

/// ResourceQuota admission of a new object (or of an update from `previous`): every quota of
/// the namespace that covers it must have room for what it uses (or what the update adds);
/// that is added to each quota's status (unless `dry_run`). `name` is the object's name as
/// messages show it.
pub async fn charge_quotas(
    server: &ApiServer,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    obj: &Value,
    previous: Option<&Value>,
    dry_run: bool,
) -> Result<Charged, ApiError> {
    let quotas = in_namespace(&server.quotas, ns);
    if quotas.is_empty() {
        return Ok(Charged::default());
    }
    let forbidden = |msg: &str| ApiError::forbidden_object(info.group, info.plural, name, msg);
    let mut covering = Vec::new();
    for q in &quotas {
        if !quota::matches(q, info.group, info.plural, obj) {
            continue;
        }
        let qname = q
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let hard = quota::parse_list(q.pointer("/status/hard"));
        let restricted = quota::matching_resources(info.group, info.plural, hard.keys());
        if let Some(msg) = quota::missing_requirements(&restricted, info.group, info.plural, obj) {
            return Err(forbidden(&format!("failed quota: {qname}: {msg}")));
        }
        let used = quota::parse_list(q.pointer("/status/used"));
        let unknown: Vec<&String> = restricted
            .iter()
            .filter(|r| !used.contains_key(*r))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            return Err(forbidden(&format!(
                "status unknown for quota: {qname}, resources: {}",
                names.join(",")
            )));
        }
        covering.push(qname.to_string());
    }
    if covering.is_empty() {
        return Ok(Charged::default());
    }
    let now = now_secs();
    let mut usage = quota::usage(info.group, info.plural, obj, now);
    if let Some(prev) = previous {
        // What the update adds; what it frees the controller gives back.
        let before = quota::usage(info.group, info.plural, prev, now);
        usage = usage
            .into_iter()
            .filter_map(|(k, q)| {
                let added = before.get(&k).map_or(q, |b| q - *b);
                (!added.is_negative() && !added.is_zero()).then_some((k, added))
            })
            .collect();
        if usage.is_empty() {
            return Ok(Charged::default());
        }
    }
    let negative: Vec<&str> = usage
        .iter()
        .filter(|(_, q)| q.is_negative())
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(forbidden(&format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        )));
    }
    let mut charged = Charged::default();
    for qname in covering {
        let key = format!("{RESOURCE_QUOTA_PREFIX}{ns}/{qname}");
        let refused = Arc::new(Mutex::new(None));
        let rewrite = {
            let (refused, usage, qname) = (refused.clone(), usage.clone(), qname.clone());
            move |kv: &skiff_store::KeyValue| {
                let mut q: Value = serde_json::from_slice(&kv.value).ok()?;
                let before = q.pointer("/status/used").cloned();
                if let Err(msg) = quota::charge(&mut q, &qname, &usage) {
                    *refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(msg);
                    return None;
                }
                if dry_run || q.pointer("/status/used") == before.as_ref() {
                    return None;
                }
                serde_json::to_vec(&q).ok().map(bytes::Bytes::from)
            }
        };
        let written = server.store.update_with(&key, rewrite).await;
        let refused = refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(msg) = refused {
            charged.release(server).await;
            return Err(forbidden(&msg));
        }
        match written {
            Ok(Some(_)) => charged.0.push((key, usage.clone())),
            // Deleted since it was followed: it no longer limits anything.
            Ok(None) | Err(skiff_store::StoreError::NotFound) => {}
            Err(e) => {
                charged.release(server).await;
                return Err(ApiError::internal(format!(
                    "resource quota {qname} could not be updated: {e}"
                )));
            }
        }
    }
    Ok(charged)
}
