//! Service account token cleaner (the clean-up half of upstream's tokens controller): a
//! Secret of type `kubernetes.io/service-account-token` lives only as long as the account
//! it names. When the account is deleted, or the secret names an account that does not
//! exist (or exists with another uid), the secret is deleted. The API server fills such a
//! secret's token when it is created for an existing account.

use crate::runtime::{self, Change, Informer, Informers, Key, Queue};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Preconditions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

pub use crate::runtime::Error;

struct Ctx {
    client: kube::Client,
    accounts: Arc<Informer<ServiceAccount>>,
    secrets: Arc<Informer<Secret>>,
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The account (namespace and name) a token secret belongs to.
fn account_key(secret: &Secret) -> Option<Key> {
    let name = annotation(secret, NAME_ANNOTATION)?;
    Some(Key::new(secret.metadata.namespace.as_deref()?, name))
}

pub async fn run(informers: Arc<Informers>, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        accounts: informers.get::<ServiceAccount>(),
        secrets: informers.get_selected::<Secret>(&format!("type={TOKEN_TYPE}")),
    });
    let queue = Queue::new();
    let sa_changes = ctx.accounts.subscribe();
    let secret_changes = ctx.secrets.subscribe();
    ctx.accounts.synced().await;
    ctx.secrets.synced().await;
    for secret in ctx.secrets.list() {
        if let Some(key) = account_key(&secret) {
            queue.add(key);
        }
    }
    let sas = runtime::enqueue_changes(
        sa_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<ServiceAccount>| match c {
            Change::Deleted(sa) => Some(Key::new(
                sa.metadata.namespace.as_deref().unwrap_or(""),
                sa.metadata.name.as_deref().unwrap_or(""),
            )),
            Change::Applied { .. } => None,
        },
    );
    let secrets = runtime::enqueue_changes(
        secret_changes,
        queue.clone(),
        cancel.clone(),
        |c: &Change<Secret>| match c {
            Change::Applied { new, .. } => account_key(new),
            Change::Deleted(_) => None,
        },
    );
    let ctx2 = ctx.clone();
    let workers = runtime::run_workers(
        "serviceaccount-token-cleaner",
        queue,
        1,
        cancel,
        move |key| {
            let ctx = ctx2.clone();
            async move { sync(&ctx, &key).await }
        },
    );
    tokio::join!(sas, secrets, workers);
}

/// The uid of account `key` as the informer knows it, or as the server answers when the
/// informer has not seen it (it may have been created just before the secret).
async fn account_uid(ctx: &Ctx, key: &Key) -> Result<Option<String>, Error> {
    if let Some(sa) = ctx.accounts.get(&key.namespace, &key.name) {
        return Ok(sa.metadata.uid.clone());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &key.namespace);
    Ok(api.get_opt(&key.name).await?.and_then(|sa| sa.metadata.uid))
}

async fn sync(ctx: &Ctx, key: &Key) -> Result<Option<Duration>, Error> {
    let tokens: Vec<Arc<Secret>> = ctx
        .secrets
        .list_namespace(&key.namespace)
        .into_iter()
        .filter(|s| annotation(s, NAME_ANNOTATION) == Some(key.name.as_str()))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    if tokens.is_empty() {
        return Ok(None);
    }
    let uid = account_uid(ctx, key).await?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
    for secret in tokens {
        let belongs = match (&uid, annotation(&secret, UID_ANNOTATION)) {
            (None, _) => false,
            (Some(_), None | Some("")) => true,
            (Some(uid), Some(named)) => uid == named,
        };
        if belongs {
            continue;
        }
        let name = secret.metadata.name.as_deref().unwrap_or("");
        tracing::info!(
            namespace = %key.namespace,
            secret = name,
            account = %key.name,
            "deleting a service account token whose account does not exist"
        );
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            // Gone already, or replaced by a secret of the same name (its own event follows).
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}
