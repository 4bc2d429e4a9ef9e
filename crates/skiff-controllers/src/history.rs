//! ControllerRevisions, the template history of DaemonSets and StatefulSets: snapshots of a
//! pod template as upstream's strategic-merge patch, their hashes, names, order and equality.

use crate::deployment::util::template_hash;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};

/// The label carrying a revision's hash (DaemonSet pods and revisions) or a revision's name
/// (StatefulSet pods).
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Upstream's getPatch: the data a revision stores, a patch that restores `template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision recorded, if its data holds one.
pub fn template_of(cr: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Whether a revision records exactly `template` (upstream compares the patch bytes; comparing
/// the parsed values makes the test independent of key order).
pub fn records(cr: &ControllerRevision, template: &PodTemplateSpec) -> bool {
    cr.data.as_ref().map(|d| &d.0) == Some(&template_patch(template))
}

/// Whether two revisions hold the same data (upstream EqualRevision without the hash shortcut).
pub fn same_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    a.data.as_ref().map(|d| &d.0) == b.data.as_ref().map(|d| &d.0)
}

/// The hash naming a revision of `template`.
pub fn hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    template_hash(template, collision_count)
}

/// Upstream ControllerRevisionName: `<parent>-<hash>`, the parent shortened to fit.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let mut p = parent.to_string();
    if p.len() > 223 {
        p.truncate(223);
    }
    format!("{p}-{hash}")
}

/// Oldest first: by revision number, then creation time, then name (upstream
/// SortControllerRevisions).
pub fn sort(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ca.cmp(&cb)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The revision number after the highest of `revisions`.
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .expect("template literal")
    }

    fn revision(name: &str, n: i64, t: &PodTemplateSpec) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(template_patch(t))),
            revision: n,
        }
    }

    #[test]
    fn a_revision_round_trips_its_template() {
        let t = template("nginx:1.25");
        let r = revision("web-a", 1, &t);
        assert_eq!(template_of(&r), Some(t.clone()));
        assert!(records(&r, &t));
        assert!(!records(&r, &template("nginx:1.26")));
        assert_eq!(
            r.data
                .as_ref()
                .and_then(|d| d.0.pointer("/spec/template/$patch")),
            Some(&json!("replace"))
        );
    }

    #[test]
    fn hashes_differ_by_template_and_collision_count() {
        let a = template("nginx:1.25");
        let b = template("nginx:1.26");
        assert_eq!(hash(&a, Some(0)), hash(&a, Some(0)));
        assert_ne!(hash(&a, Some(0)), hash(&b, Some(0)));
        assert_ne!(hash(&a, Some(0)), hash(&a, Some(1)));
        assert!(revision_name("web", &hash(&a, None)).starts_with("web-"));
    }

    #[test]
    fn revisions_sort_by_number() {
        let t = template("x");
        let mut rs = vec![
            revision("c", 3, &t),
            revision("a", 1, &t),
            revision("b", 2, &t),
        ];
        sort(&mut rs);
        let names: Vec<_> = rs.iter().filter_map(|r| r.metadata.name.clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(next_revision(&rs), 4);
        assert_eq!(next_revision(&[]), 1);
    }
}
