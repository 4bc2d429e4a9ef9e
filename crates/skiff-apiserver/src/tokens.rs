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

    /// The public key as a JSON Web Key (RFC 7517), as `/openid/v1/jwks` lists it.
    pub fn jwk(&self) -> Value {
        // ring gives the uncompressed point: 0x04, then x and y of 32 bytes each.
        let coords = self.key.public_key().as_ref().get(1..).unwrap_or_default();
        let (x, y) = coords.split_at(coords.len() / 2);
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": B64.encode(x),
            "y": B64.encode(y),
        })
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

/// Where relying parties find the keys (upstream's default for `--service-account-jwks-uri`).
fn jwks_uri() -> String {
    format!("{ISSUER}/openid/v1/jwks")
}

fn discovery_response(content_type: &str, body: &Value) -> axum::response::Response {
    http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "public, max-age=3600")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap_or_default()
}

/// `/.well-known/openid-configuration`: the OIDC discovery document of the service account
/// issuer, so that other systems can verify skiff's tokens (404 while no key is set).
pub fn openid_configuration(server: &ApiServer) -> Result<axum::response::Response, ApiError> {
    server.tokens.get().ok_or_else(ApiError::no_route)?;
    Ok(discovery_response(
        "application/json",
        &json!({
            "issuer": ISSUER,
            "jwks_uri": jwks_uri(),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }),
    ))
}

/// `/openid/v1/jwks`: the key set tokens are signed with.
pub fn openid_keys(server: &ApiServer) -> Result<axum::response::Response, ApiError> {
    let signer = server.tokens.get().ok_or_else(ApiError::no_route)?;
    Ok(discovery_response(
        "application/jwk-set+json",
        &json!({"keys": [signer.jwk()]}),
    ))
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
    if claims.get("iss").and_then(Value::as_str) == Some(LEGACY_ISSUER) {
        // Legacy tokens carry no audience: they serve whatever is asked (upstream's
        // implicit audiences).
        let user = authenticate_legacy(server, &claims, token).await?;
        return Some((user, audiences.to_vec()));
    }
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
    Some((account_user(ns, sa), meant))
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

/// The issuer of legacy (secret-held, unexpiring) service account tokens.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
const LEGACY_PREFIX: &str = "kubernetes.io/serviceaccount/";

/// Fills a new Secret of type `kubernetes.io/service-account-token` as upstream's token
/// controller does, once its service account exists: the account's uid annotation, and
/// `token` (an unexpiring token naming the secret), `ca.crt` and `namespace` in its data.
pub async fn fill_token_secret(server: &ApiServer, signer: &Signer, ns: &str, secret: &mut Value) {
    if secret.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token") {
        return;
    }
    let annotation = |s: &Value, k: &str| {
        s.pointer(&format!(
            "/metadata/annotations/kubernetes.io~1service-account.{k}"
        ))
        .and_then(Value::as_str)
        .map(str::to_string)
    };
    let Some(sa_name) = annotation(secret, "name") else {
        return;
    };
    let Some(sa_info) = registry::find("", "v1", "serviceaccounts") else {
        return;
    };
    let Ok(sa) = crate::rest::get_object(server, sa_info, Some(ns), &sa_name).await else {
        return;
    };
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if annotation(secret, "uid").is_some_and(|u| !u.is_empty() && u != uid) {
        return;
    }
    let secret_name = crate::objects::name_of(secret).to_string();
    let claims = json!({
        "iss": LEGACY_ISSUER,
        format!("{LEGACY_PREFIX}namespace"): ns,
        format!("{LEGACY_PREFIX}secret.name"): secret_name,
        format!("{LEGACY_PREFIX}service-account.name"): sa_name,
        format!("{LEGACY_PREFIX}service-account.uid"): uid,
        "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
    });
    let Ok(token) = signer.sign(&claims) else {
        return;
    };
    let std64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = json!(uid);
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    secret["data"]["token"] = json!(std64(&token));
    secret["data"]["namespace"] = json!(std64(ns));
    if let Some(ca) = server.ca_pem.get() {
        secret["data"]["ca.crt"] = json!(std64(ca));
    }
}

/// A legacy token's account, while the secret holding it (with this very token) and the
/// account still exist.
async fn authenticate_legacy(server: &ApiServer, claims: &Value, token: &str) -> Option<User> {
    let claim = |k: &str| {
        claims
            .get(format!("{LEGACY_PREFIX}{k}"))
            .and_then(Value::as_str)
    };
    let (ns, secret_name) = (claim("namespace")?, claim("secret.name")?);
    let (sa, sa_uid) = (
        claim("service-account.name")?,
        claim("service-account.uid")?,
    );
    let info = registry::find("", "v1", "secrets")?;
    let secret = crate::rest::get_object(server, info, Some(ns), secret_name)
        .await
        .ok()?;
    let held = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
    if held.as_deref() != Some(token.as_bytes())
        || secret.pointer("/metadata/deletionTimestamp").is_some()
        || !exists(server, "serviceaccounts", ns, sa, sa_uid).await
    {
        return None;
    }
    Some(account_user(ns, sa))
}

fn account_user(ns: &str, sa: &str) -> User {
    User {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
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

    /// A relying party that knows only the published JWK verifies the signer's tokens.
    #[test]
    fn the_published_key_verifies_tokens() {
        let a = signer();
        let jwk = a.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], json!(a.kid));
        let coord = |k: &str| B64.decode(jwk[k].as_str().expect(k)).expect("base64url");
        let (x, y) = (coord("x"), coord("y"));
        assert_eq!((x.len(), y.len()), (32, 32));
        let point = [&[4u8][..], &x, &y].concat();
        let token = a.sign(&json!({"sub": "s"})).expect("signed");
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let sig = B64.decode(sig).expect("signature");
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &sig)
            .expect("the JWK's point verifies the token");
    }
}
