//! CSR signing controller (upstream's csrsigning): an approved CertificateSigningRequest for
//! one of the `kubernetes.io/` signers the cluster CA serves gets its certificate in
//! `status.certificate`; one the signer's rules refuse gets a `Failed` condition. Approval
//! itself is an administrator's (`kubectl certificate approve`).

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a signed certificate lives (upstream's `--cluster-signing-duration` default).
const MAX_SECONDS: i64 = 365 * 24 * 3600;

/// Signs `(signer name, PEM request, usages, seconds)` with the cluster CA, or says why not.
type SignFn = dyn Fn(&str, &str, &[String], i64) -> Result<String, String> + Send + Sync;

/// The cluster CA's signer and the signer names it serves.
#[derive(Clone)]
pub struct CsrSigner {
    pub signers: &'static [&'static str],
    pub sign: Arc<SignFn>,
}

impl std::fmt::Debug for CsrSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrSigner")
            .field("signers", &self.signers)
            .finish_non_exhaustive()
    }
}

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    signer: CsrSigner,
}

fn has_condition(csr: &CertificateSigningRequest, ty: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
}

/// Whether the request waits for this signer: approved, not denied or failed, no certificate.
fn waiting(csr: &CertificateSigningRequest, signer: &CsrSigner) -> bool {
    signer.signers.contains(&csr.spec.signer_name.as_str())
        && has_condition(csr, "Approved")
        && !has_condition(csr, "Denied")
        && !has_condition(csr, "Failed")
        && csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_none_or(|c| c.0.is_empty())
}

pub async fn run(informers: Arc<Informers>, signer: CsrSigner, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        csrs: informers.get::<CertificateSigningRequest>(),
        signer,
    });
    let queue = Queue::new();
    let changes = ctx.csrs.subscribe();
    ctx.csrs.synced().await;
    for csr in ctx.csrs.list() {
        if waiting(&csr, &ctx.signer) {
            queue.add(Key::new("", csr.metadata.name.as_deref().unwrap_or("")));
        }
    }
    let ctx1 = ctx.clone();
    let enqueue = runtime::enqueue_changes(
        changes,
        queue.clone(),
        cancel.clone(),
        move |c: &Change<CertificateSigningRequest>| match c {
            Change::Applied { new, .. } if waiting(new, &ctx1.signer) => {
                Some(Key::new("", new.metadata.name.as_deref().unwrap_or("")))
            }
            _ => None,
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers("csrsigning", queue, 1, cancel, move |key| {
        let ctx = ctx2.clone();
        async move { sync(&ctx, &key).await }
    });
    tokio::join!(enqueue, workers);
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let Some(csr) = ctx.csrs.get("", &key.name) else {
        return Ok(None);
    };
    if !waiting(&csr, &ctx.signer) {
        return Ok(None);
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let seconds = csr
        .spec
        .expiration_seconds
        .map_or(MAX_SECONDS, i64::from)
        .min(MAX_SECONDS);
    let patch = match (ctx.signer.sign)(&csr.spec.signer_name, &request, &usages, seconds) {
        Ok(pem) => json!({"status": {"certificate": ByteString(pem.into_bytes())}}),
        Err(reason) => {
            tracing::info!(csr = %key.name, %reason, "certificate request refused by its signer");
            let mut conditions: Vec<serde_json::Value> = csr
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .collect()
                })
                .unwrap_or_default();
            conditions.push(json!({
                "type": "Failed",
                "status": "True",
                "reason": "SignerValidationFailure",
                "message": reason,
            }));
            json!({"status": {"conditions": conditions}})
        }
    };
    runtime::ignore_not_found::<_, Error>(
        api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(None)
}
