//! Service account tokens: the TokenRequest subresource (`kubectl create token`) issues
//! ES256-signed JWTs as upstream's API server does, and the authenticator accepts them
//! while the service account (and the object the token is bound to) still exists.

use crate::objects::now_rfc3339;
use crate::server::{API_AUDIENCE, ApiServer, User};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use skiff_api::registry;
use skiff_api::status::{ApiError, Cause};

/// The issuer of skiff's tokens, as upstream's default `--service-account-issuer`.
pub const ISSUER: &str = API_AUDIENCE;

/// The key tokens are signed and checked with.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    /// From a PKCS#8 ECDSA P-256 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("invalid service account key: {e}"))?;
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            key.public_key().as_ref(),
        ));
        Ok(Signer { key, kid, rng })
    }

    fn sign(&self, claims: &Value) -> Result<String, ApiError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| ApiError::internal("cannot sign the token"))?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// The claims of a token this key signed, or None.
    fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return None;
        }
        let sig = B64.decode(s).ok()?;
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
        serde_json::from_slice(&B64.decode(c).ok()?).ok()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Whether a token looks like a JWT (three dot-separated parts), not a static token.
pub fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The service account a token names, and which of `audiences` it is meant for, if it is
/// signed by `signer`, current, meant for one of them, and its service account (and bound
/// object) still exist with the same uid.
pub async fn authenticate(
    server: &ApiServer,
    signer: &Signer,
    token: &str,
    audiences: &[String],
) -> Option<(User, Vec<String>)> {
    let claims = signer.verify(token)?;
    let t = now();
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    // Upstream allows a minute of clock skew either way.
    if t > exp + 60 || t + 60 < nbf {
        return None;
    }
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return None;
    }
    let meant: Vec<String> = claims
        .get("aud")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| audiences.iter().any(|want| want == a))
        .map(str::to_string)
        .collect();
    if meant.is_empty() {
        return None;
    }
    let k8s = claims.get("kubernetes.io")?;
    let ns = k8s.get("namespace").and_then(Value::as_str)?;
    let sa = k8s
        .pointer("/serviceaccount/name")
        .and_then(Value::as_str)?;
    let sa_uid = k8s.pointer("/serviceaccount/uid").and_then(Value::as_str)?;
    if !exists(server, "serviceaccounts", ns, sa, sa_uid).await {
        return None;
    }
    for (kind, plural, namespaced) in [
        ("pod", "pods", true),
        ("secret", "secrets", true),
        ("node", "nodes", false),
    ] {
        if let Some(bound) = k8s.get(kind) {
            let name = bound.get("name").and_then(Value::as_str)?;
            let uid = bound.get("uid").and_then(Value::as_str)?;
            let ns = if namespaced { ns } else { "" };
            if !exists(server, plural, ns, name, uid).await {
                return None;
            }
        }
    }
    let user = User {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    };
    Some((user, meant))
}

/// Whether the core object `plural`/`name` exists with `uid` (in `ns`, "" if cluster-scoped).
async fn exists(server: &ApiServer, plural: &str, ns: &str, name: &str, uid: &str) -> bool {
    let Some(info) = registry::find("", "v1", plural) else {
        return false;
    };
    let ns = (!ns.is_empty()).then_some(ns);
    match crate::rest::get_object(server, info, ns, name).await {
        Ok(obj) => obj.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid),
        Err(_) => false,
    }
}

const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

/// POST `serviceaccounts/NAME/token`: a TokenRequest answered with a signed token.
pub async fn request(
    server: &ApiServer,
    signer: &Signer,
    ns: &str,
    sa_name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let sa_info = registry::find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not registered"))?;
    let sa = crate::rest::get_object(server, sa_info, Some(ns), sa_name).await?;
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let invalid = |cause: Cause| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            sa_name,
            vec![cause],
        )
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(Cause::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        )));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(Cause::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        )));
    }
    let audiences: Vec<Value> = match spec.get("audiences").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![json!(API_AUDIENCE)],
    };
    let mut k8s = json!({"namespace": ns, "serviceaccount": {"name": sa_name, "uid": sa_uid}});
    let bound = spec.get("boundObjectRef").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &bound {
        let kind = b.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
        let (claim, plural, namespaced) = match kind {
            "Pod" => ("pod", "pods", true),
            "Secret" => ("secret", "secrets", true),
            "Node" => ("node", "nodes", false),
            _ => {
                return Err(invalid(Cause::not_supported(
                    "spec.boundObjectRef.kind",
                    &json!(kind),
                    &["Node", "Pod", "Secret"],
                )));
            }
        };
        let info = registry::find("", "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
        let obj = crate::rest::get_object(server, info, namespaced.then_some(ns), name).await?;
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = b
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                "",
                plural,
                name,
                format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        k8s[claim] = json!({"name": name, "uid": uid});
    }
    let iat = now();
    let exp = iat + expiration;
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": iat,
        "iss": ISSUER,
        "jti": crate::objects::new_uid(),
        "kubernetes.io": k8s,
        "nbf": iat,
        "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
    });
    let token = signer.sign(&claims)?;
    let expires = chrono::DateTime::from_timestamp(exp, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(now_rfc3339);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": bound},
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let key = rcgen::KeyPair::generate().expect("key");
        Signer::from_pkcs8(key.serialized_der()).expect("signer")
    }

    #[test]
    fn tokens_verify_only_with_their_key() {
        let (a, b) = (signer(), signer());
        let claims = json!({"sub": "system:serviceaccount:default:default"});
        let token = a.sign(&claims).expect("signed");
        assert!(is_jwt(&token));
        assert_eq!(a.verify(&token), Some(claims));
        assert_eq!(b.verify(&token), None);
        // A changed payload breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(r#"{"sub":"system:admin"}"#);
        parts[1] = &forged;
        assert_eq!(a.verify(&parts.join(".")), None);
        assert_eq!(a.verify("a.b"), None);
    }
}
