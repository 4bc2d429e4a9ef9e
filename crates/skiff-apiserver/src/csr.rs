//! CertificateSigningRequests as upstream's strategies treat them: the requester is recorded
//! at create, an update of the object changes only its metadata, the `approval` subresource
//! changes only the conditions, and the `status` subresource cannot approve or deny.

use crate::objects::now_rfc3339;
use crate::server::User;
use serde_json::{Value, json};
use skiff_api::status::{ApiError, Cause};

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

pub fn is_csr(group: &str, plural: &str) -> bool {
    group == "certificates.k8s.io" && plural == "certificatesigningrequests"
}

/// At create: who asked (upstream's PrepareForCreate), and no status.
pub fn prepare_create(obj: &mut Value, user: &User) {
    let Some(m) = obj.as_object_mut() else { return };
    if !m.get("spec").is_some_and(Value::is_object) {
        m.insert("spec".into(), json!({}));
    }
    if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("username".into(), json!(user.name));
        spec.insert("groups".into(), json!(user.groups));
        spec.remove("uid");
        spec.remove("extra");
    }
    m.insert("status".into(), json!({}));
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn kind_of(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or("")
}

fn is_approval(c: &Value) -> bool {
    matches!(kind_of(c), APPROVED | DENIED)
}

/// Stamps conditions as upstream does: `lastUpdateTime` now when unset; `lastTransitionTime`
/// kept from the old condition of the same type and status, now otherwise.
fn stamp(new: &mut [Value], old: &[Value]) {
    let now = now_rfc3339();
    for c in new.iter_mut() {
        let before = old.iter().find(|o| kind_of(o) == kind_of(c));
        let Some(m) = c.as_object_mut() else { continue };
        if m.get("lastUpdateTime").is_none_or(Value::is_null) {
            m.insert("lastUpdateTime".into(), json!(now));
        }
        if m.get("lastTransitionTime").is_none_or(Value::is_null) {
            let kept = before
                .filter(|o| o.get("status") == m.get("status"))
                .and_then(|o| o.get("lastTransitionTime"))
                .filter(|t| !t.is_null())
                .cloned();
            m.insert("lastTransitionTime".into(), kept.unwrap_or(json!(now)));
        }
    }
}

/// The rules every CSR's conditions follow (upstream's validateConditions).
pub fn validate_conditions(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let all = conditions(obj);
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let field = format!("status.conditions[{i}]");
        let ty = kind_of(c);
        if ty.is_empty() {
            causes.push(Cause::required(format!("{field}.type")));
        }
        let status = c.get("status").and_then(Value::as_str).unwrap_or("");
        if status.is_empty() {
            causes.push(Cause::required(format!("{field}.status")));
        } else if matches!(ty, APPROVED | DENIED) && status != "True" {
            causes.push(Cause::not_supported(
                format!("{field}.status"),
                &json!(status),
                &["True"],
            ));
        } else if !matches!(status, "True" | "False" | "Unknown") {
            causes.push(Cause::not_supported(
                format!("{field}.status"),
                &json!(status),
                &["False", "True", "Unknown"],
            ));
        }
        if matches!(ty, APPROVED | DENIED | FAILED) {
            if seen.contains(&ty) {
                causes.push(Cause::duplicate(format!("{field}.type"), &json!(ty)));
            }
            seen.push(ty);
        }
    }
    if seen.contains(&APPROVED) && seen.contains(&DENIED) {
        causes.push(Cause::invalid(
            "status.conditions",
            &json!(all),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    causes
}

/// An update through `/approval`: the current object with the new conditions, stamped;
/// an approval or denial once given stays.
pub fn approval(current: &Value, new: &Value, name: &str) -> Result<Value, ApiError> {
    let old = conditions(current);
    let mut next = conditions(new);
    for given in old.iter().filter(|c| is_approval(c)) {
        if !next.iter().any(|c| kind_of(c) == kind_of(given)) {
            return Err(ApiError::invalid(
                "certificates.k8s.io",
                "CertificateSigningRequest",
                name,
                vec![Cause::forbidden(
                    "status.conditions",
                    format!(
                        "updates may not remove a condition of type {:?}",
                        kind_of(given)
                    ),
                )],
            ));
        }
    }
    stamp(&mut next, &old);
    let mut merged = current.clone();
    if !merged.get("status").is_some_and(Value::is_object) {
        merged["status"] = json!({});
    }
    merged["status"]["conditions"] = json!(next);
    if let Some(mf) = new.pointer("/metadata/managedFields") {
        merged["metadata"]["managedFields"] = mf.clone();
    }
    Ok(merged)
}

/// An update through `/status`: the approval conditions stay as they were, the others are
/// stamped.
pub fn status_update(current: &Value, new: &mut Value) {
    let old = conditions(current);
    let mut next: Vec<Value> = old.iter().filter(|c| is_approval(c)).cloned().collect();
    next.extend(conditions(new).into_iter().filter(|c| !is_approval(c)));
    stamp(&mut next, &old);
    if new.get("status").is_some_and(Value::is_object) {
        if next.is_empty() {
            if let Some(s) = new["status"].as_object_mut() {
                s.remove("conditions");
            }
        } else {
            new["status"]["conditions"] = json!(next);
        }
    }
}

/// An update of the object itself changes neither spec nor status (upstream's
/// PrepareForUpdate): only metadata.
pub fn main_update(current: &Value, new: &mut Value) {
    for part in ["spec", "status"] {
        match current.get(part) {
            Some(v) => new[part] = v.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove(part);
                }
            }
        }
    }
}

/// kubectl's CONDITION column: Denied, Approved or Pending, then Failed and Issued.
pub fn condition_column(csr: &Value) -> String {
    let all = conditions(csr);
    let has = |t: &str| all.iter().any(|c| kind_of(c) == t);
    let mut s = if has(DENIED) {
        DENIED.to_string()
    } else if has(APPROVED) {
        APPROVED.to_string()
    } else {
        "Pending".to_string()
    };
    if has(FAILED) {
        s.push_str(",Failed");
    }
    if csr
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        s.push_str(",Issued");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(conds: Value) -> Value {
        json!({"metadata": {"name": "c"}, "spec": {"signerName": "x"}, "status": {"conditions": conds}})
    }

    #[test]
    fn approval_and_denial_exclude_each_other() {
        let both = csr(json!([
            {"type": "Approved", "status": "True"},
            {"type": "Denied", "status": "True"}
        ]));
        let causes = validate_conditions(&both);
        assert!(
            causes
                .iter()
                .any(|c| c.message.contains("mutually exclusive")),
            "{causes:?}"
        );
        let twice = csr(json!([
            {"type": "Approved", "status": "True"},
            {"type": "Approved", "status": "True"}
        ]));
        assert_eq!(validate_conditions(&twice).len(), 1);
        let false_approval = csr(json!([{"type": "Approved", "status": "False"}]));
        assert_eq!(validate_conditions(&false_approval).len(), 1);
        assert!(
            validate_conditions(&csr(json!([{"type": "Approved", "status": "True"}]))).is_empty()
        );
    }

    #[test]
    fn approval_changes_only_conditions_and_keeps_given_ones() {
        let current = csr(json!([]));
        let mut new = csr(json!([{"type": "Approved", "status": "True", "reason": "R"}]));
        new["spec"]["signerName"] = json!("changed");
        let approved = approval(&current, &new, "c").expect("approved");
        assert_eq!(approved["spec"]["signerName"], "x");
        assert_eq!(condition_column(&approved), "Approved");
        assert!(
            approved
                .pointer("/status/conditions/0/lastUpdateTime")
                .is_some()
        );
        assert!(approval(&approved, &csr(json!([])), "c").is_err());
    }

    #[test]
    fn status_updates_cannot_approve() {
        let current = csr(json!([]));
        let mut new = csr(json!([
            {"type": "Approved", "status": "True"},
            {"type": "Failed", "status": "True"}
        ]));
        status_update(&current, &mut new);
        assert_eq!(condition_column(&new), "Pending,Failed");
    }
}
