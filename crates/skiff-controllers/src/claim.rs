//! Adoption and release by selector, as upstream's ControllerRefManager: an owner claims the
//! orphans it selects and lets go of the dependents it stopped selecting.

use crate::runtime::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::sync::Arc;

/// The dependents of `owner` among `candidates`, adopting matching orphans and releasing owned
/// ones that no longer match. `matches` adds a test to the selector (upstream's filter, such as
/// a StatefulSet's name prefix). A deleting owner adopts nothing and releases nothing.
pub async fn claim<K>(
    api: &Api<K>,
    candidates: Vec<Arc<K>>,
    selector: &Selector,
    owner: &OwnerReference,
    deleting: bool,
    matches: impl Fn(&K) -> bool,
) -> Result<Vec<Arc<K>>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    for obj in candidates {
        let meta = obj.meta();
        let controller = meta
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|r| r.controller == Some(true)));
        let selected = selector.matches(meta.labels.as_ref()) && matches(&obj);
        let gone = meta.deletion_timestamp.is_some();
        match controller {
            Some(r) if r.uid == owner.uid => {
                if selected || deleting {
                    out.push(obj);
                } else if !gone {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": owner.uid}],
                        "uid": meta.uid,
                    }});
                    ignore_conflict(patch_object(api, &*obj, patch).await)?;
                }
            }
            Some(_) => {}
            None if selected && !deleting && !gone => {
                let patch = json!({"metadata": {"ownerReferences": [owner], "uid": meta.uid}});
                if let Some(adopted) = ignore_conflict(patch_object(api, &*obj, patch).await)? {
                    out.push(Arc::new(adopted));
                }
            }
            None => {}
        }
    }
    Ok(out)
}

async fn patch_object<K>(api: &Api<K>, obj: &K, patch: serde_json::Value) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
}

/// Gone, changed meanwhile or refused: the next sync sees the new state.
fn ignore_conflict<T>(r: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => Ok(None),
        Err(e) => Err(e),
    }
}
