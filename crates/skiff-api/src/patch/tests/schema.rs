use crate::patch::{ListStrategy, Schema, list_strategy};

const fn map(keys: &'static [&'static str]) -> ListStrategy {
    ListStrategy::Map { keys }
}

#[test]
fn list_strategies_of_built_in_kinds() {
    use ListStrategy::{Atomic, Replace, Set};
    let cases: &[(&str, &str, &[&str], ListStrategy, ListStrategy)] = &[
        (
            "",
            "Pod",
            &["spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "initContainers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "ephemeralContainers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "volumes"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "ports"],
            map(&["containerPort"]),
            map(&["containerPort", "protocol"]),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "env"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "envFrom"],
            Replace,
            Atomic,
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "volumeMounts"],
            map(&["mountPath"]),
            map(&["mountPath"]),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "volumeDevices"],
            map(&["devicePath"]),
            map(&["devicePath"]),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "command"],
            Replace,
            Atomic,
        ),
        ("", "Pod", &["spec", "tolerations"], Replace, Atomic),
        (
            "",
            "Pod",
            &["spec", "imagePullSecrets"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "Pod",
            &["spec", "hostAliases"],
            map(&["ip"]),
            map(&["ip"]),
        ),
        (
            "",
            "Pod",
            &["spec", "topologySpreadConstraints"],
            map(&["topologyKey"]),
            map(&["topologyKey", "whenUnsatisfiable"]),
        ),
        (
            "",
            "Pod",
            &["status", "conditions"],
            map(&["type"]),
            map(&["type"]),
        ),
        ("", "Pod", &["metadata", "finalizers"], Set, Set),
        (
            "",
            "Pod",
            &["metadata", "ownerReferences"],
            map(&["uid"]),
            map(&["uid"]),
        ),
        (
            "",
            "Service",
            &["spec", "ports"],
            map(&["port"]),
            map(&["port", "protocol"]),
        ),
        (
            "",
            "Node",
            &["status", "addresses"],
            map(&["type"]),
            map(&["type"]),
        ),
        (
            "",
            "Node",
            &["status", "conditions"],
            map(&["type"]),
            map(&["type"]),
        ),
        ("", "Node", &["spec", "taints"], Replace, Atomic),
        (
            "apps",
            "Deployment",
            &["spec", "template", "spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "apps",
            "Deployment",
            &["status", "conditions"],
            map(&["type"]),
            map(&["type"]),
        ),
        (
            "apps",
            "StatefulSet",
            &["spec", "template", "spec", "containers", "ports"],
            map(&["containerPort"]),
            map(&["containerPort", "protocol"]),
        ),
        (
            "apps",
            "DaemonSet",
            &["spec", "template", "spec", "volumes"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "apps",
            "ReplicaSet",
            &["spec", "template", "spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "batch",
            "Job",
            &["spec", "template", "spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "batch",
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
                "env",
            ],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "ReplicationController",
            &["spec", "template", "spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        (
            "",
            "PodTemplate",
            &["template", "spec", "containers"],
            map(&["name"]),
            map(&["name"]),
        ),
        ("", "Endpoints", &["subsets"], Replace, Atomic),
        ("example.com", "Widget", &["spec", "items"], Replace, Atomic),
    ];
    for (group, kind, path, patch, apply) in cases {
        assert_eq!(
            list_strategy(group, kind, path),
            (*patch, *apply),
            "{group}/{kind} {}",
            path.join(".")
        );
    }
}

#[test]
fn retain_keys_and_atomic_fields() {
    let deploy = Schema::for_kind("apps", "Deployment");
    assert!(deploy.path(&["spec", "strategy"]).retain_keys());
    assert!(
        deploy
            .path(&["spec", "template", "spec", "volumes"])
            .retain_keys()
    );
    assert!(!deploy.path(&["spec", "template"]).retain_keys());
    assert_eq!(deploy.path(&["spec", "selector"]).atomic(), Some(true));
    assert_eq!(
        deploy
            .path(&["spec", "template", "spec", "nodeSelector"])
            .atomic(),
        Some(true)
    );
    assert_eq!(deploy.path(&["metadata", "labels"]).atomic(), Some(false));
    assert_eq!(deploy.path(&["spec", "template"]).atomic(), Some(false));
    let crd = Schema::for_kind("example.com", "Widget");
    assert!(!crd.is_known());
    assert_eq!(crd.path(&["spec"]).atomic(), None);
}
