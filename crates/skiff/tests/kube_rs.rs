//! kube-rs against skiff: a watcher and a reflector over HTTPS see every change, and a
//! kube-runtime controller runs in-process over the in-process client, its derived objects
//! collected by skiff's garbage collector.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use skiff_testkit::TestServer;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const N: usize = 50;

fn configmap(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("test".into(), "kube-rs".into())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("value".into(), value.into())])),
        ..ConfigMap::default()
    }
}

/// A kube-rs client of `server` over HTTPS, from its admin kubeconfig.
async fn https_client(server: &TestServer) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client")
}

/// What a watcher saw of one object: the resourceVersions it was applied at, and whether it went.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    versions: BTreeSet<String>,
    deleted: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_reflector_over_https_see_every_change() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    tokio::time::timeout(Duration::from_secs(120), async {
        let client = https_client(&server).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let selector = watcher::Config::default().labels("test=kube-rs");

        // The watcher records every event; it signals once its initial list is done.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        {
            let stream = watcher(api.clone(), selector.clone());
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut ready = Some(ready_tx);
                let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
                loop {
                    let ev = tokio::select! {
                        _ = cancel.cancelled() => break,
                        ev = stream.next() => ev,
                    };
                    match ev.expect("watch stream ended").expect("watch error") {
                        watcher::Event::InitDone => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                            let rv = cm
                                .resource_version()
                                .expect("objects carry a resourceVersion");
                            seen.entry(cm.name_any()).or_default().versions.insert(rv);
                        }
                        watcher::Event::Delete(cm) => {
                            seen.entry(cm.name_any()).or_default().deleted = true;
                        }
                        watcher::Event::Init => {}
                    }
                }
                let _ = seen_tx.send(seen);
            });
        }
        let (reader, writer) = reflector::store::<ConfigMap>();
        {
            let stream = reflector(writer, watcher(api.clone(), selector.clone()))
                .default_backoff()
                .touched_objects();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        ev = stream.next() => if ev.is_none() { break },
                    }
                }
            });
        }
        ready_rx.await.expect("the watcher lists");
        reader
            .wait_until_ready()
            .await
            .expect("the reflector lists");

        // Create, update and delete while both watch.
        let mut expected: BTreeMap<String, Seen> = BTreeMap::new();
        for i in 0..N {
            let name = format!("cm-{i:02}");
            let created = api
                .create(&PostParams::default(), &configmap(&name, "v1"))
                .await
                .expect("create");
            let e = expected.entry(name).or_default();
            e.versions.insert(created.resource_version().expect("rv"));
        }
        for i in 0..N {
            let name = format!("cm-{i:02}");
            let patched = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"data": {"value": "v2"}})),
                )
                .await
                .expect("update");
            if let Some(e) = expected.get_mut(&name) {
                e.versions.insert(patched.resource_version().expect("rv"));
            }
        }
        for i in (0..N).step_by(2) {
            let name = format!("cm-{i:02}");
            api.delete(&name, &DeleteParams::default())
                .await
                .expect("delete");
            if let Some(e) = expected.get_mut(&name) {
                e.deleted = true;
            }
        }

        // The reflector converges on the server's list.
        let listed = |items: Vec<ConfigMap>| -> BTreeMap<String, String> {
            items
                .into_iter()
                .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
                .collect()
        };
        let truth = listed(
            api.list(&ListParams::default().labels("test=kube-rs"))
                .await
                .expect("list")
                .items,
        );
        assert_eq!(truth.len(), N / 2);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let cached = listed(reader.state().iter().map(|c| (**c).clone()).collect());
            if cached == truth {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reflector's store does not match the server's list:\n{cached:?}\n{truth:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Give the watcher the same time to see the last deletions, then compare.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        tokio::time::sleep_until(deadline).await;
        cancel.cancel();
        let seen = seen_rx.await.expect("the watcher reports");
        while tasks.join_next().await.is_some() {}
        assert_eq!(seen.len(), N, "{seen:?}");
        for (name, want) in &expected {
            let got = seen.get(name).expect("every object was seen");
            assert_eq!(got, want, "{name}");
        }
    })
    .await
    .expect("test timed out");
}

/// The in-process controller's context.
struct Ctx {
    client: Client,
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// Derives `NAME-derived` from every labelled ConfigMap, owned by it.
async fn reconcile(source: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = source.namespace().unwrap_or_else(|| "default".into());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = source
        .controller_owner_ref(&())
        .map(|mut r| {
            r.block_owner_deletion = Some(true);
            r
        })
        .unwrap_or_else(|| OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: source.name_any(),
            uid: source.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
    let derived = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{}-derived", source.name_any())),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: source.data.clone(),
        ..ConfigMap::default()
    };
    api.patch(
        &format!("{}-derived", source.name_any()),
        &PatchParams::apply("derived-controller").force(),
        &Patch::Apply(&derived),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_runs_in_process_and_the_gc_collects_what_it_derived() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cancel = CancellationToken::new();
        let config = skiff_apiserver::Config {
            advertise_address: "127.0.0.1:6443".into(),
            service_cidr: "10.43.0.0/16".into(),
            admin_token: "admin".into(),
            node_token: "node".into(),
        };
        let (server, feeder) =
            skiff_apiserver::ApiServer::new(skiff_store::Store::memory(), config, cancel.clone())
                .await
                .expect("api server");
        let client = Client::new(server.router(), "default");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = feeder.await;
        });
        tasks.spawn(skiff_controllers::run(client.clone(), cancel.clone()));
        let sources: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        {
            let ctx = Arc::new(Ctx {
                client: client.clone(),
            });
            let controller = Controller::new(
                sources.clone(),
                watcher::Config::default().labels("test=kube-rs"),
            )
            .graceful_shutdown_on(cancel.clone().cancelled_owned())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {});
            tasks.spawn(controller);
        }
        let wait_for = |name: &'static str, want: Option<&'static str>| {
            let api = sources.clone();
            async move {
                loop {
                    let got = api.get_opt(name).await.expect("get");
                    let value = got
                        .as_ref()
                        .and_then(|c| c.data.as_ref())
                        .and_then(|d| d.get("value").cloned());
                    if value.as_deref() == want {
                        return got;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        };
        let source = sources
            .create(&PostParams::default(), &configmap("source", "v1"))
            .await
            .expect("create source");
        let derived = wait_for("source-derived", Some("v1"))
            .await
            .expect("derived exists");
        let refs = derived.owner_references();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, source.uid().expect("uid"));
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(source.meta().name.as_deref(), Some("source"));

        sources
            .patch(
                "source",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"value": "v2"}})),
            )
            .await
            .expect("update source");
        wait_for("source-derived", Some("v2")).await;

        sources
            .delete("source", &DeleteParams::default())
            .await
            .expect("delete source");
        assert!(wait_for("source-derived", None).await.is_none());
        cancel.cancel();
        while tasks.join_next().await.is_some() {}
    })
    .await
    .expect("test timed out");
}

/// Events that kube-rs's `Recorder` publishes through events.k8s.io/v1 are the cluster's
/// Events: the core API lists them (note → message, reportingController →
/// reportingComponent), events.k8s.io selects them by `regarding.*`, the Recorder's repeat
/// becomes a series, core Events show up under events.k8s.io, strict events.k8s.io
/// validation applies, and kubectl describes the object with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_are_the_clusters_events() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
    use k8s_openapi::api::events::v1::Event as ApiEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let server = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    tokio::time::timeout(Duration::from_secs(120), async {
        let client = https_client(&server).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm = cms
            .create(&PostParams::default(), &configmap("noted", "1"))
            .await
            .expect("create the configmap");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "skiff-test".into(),
                instance: Some("t1".into()),
            },
        );
        let ev = Event {
            type_: EventType::Warning,
            reason: "Noticed".into(),
            note: Some("seen by kube-rs".into()),
            action: "Inspect".into(),
            secondary: None,
        };
        let reference = cm.object_ref(&());
        recorder.publish(&ev, &reference).await.expect("publish");
        recorder
            .publish(&ev, &reference)
            .await
            .expect("publish again");

        let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
        let by_object = ListParams::default().fields("involvedObject.name=noted");
        let listed = core.list(&by_object).await.expect("core list");
        assert_eq!(listed.items.len(), 1, "{:?}", listed.items);
        let e = &listed.items[0];
        assert_eq!(e.message.as_deref(), Some("seen by kube-rs"));
        assert_eq!(e.reason.as_deref(), Some("Noticed"));
        assert_eq!(e.reporting_component.as_deref(), Some("skiff-test"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("ConfigMap"));
        assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));

        let api: Api<ApiEvent> = Api::namespaced(client.clone(), "default");
        let selected =
            ListParams::default().fields("regarding.name=noted,reportingController=skiff-test");
        let listed = api.list(&selected).await.expect("events.k8s.io list");
        assert_eq!(listed.items.len(), 1);
        assert_eq!(listed.items[0].note.as_deref(), Some("seen by kube-rs"));

        let legacy = CoreEvent {
            metadata: ObjectMeta {
                name: Some("noted.legacy".into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: Some("ConfigMap".into()),
                name: Some("noted".into()),
                namespace: Some("default".into()),
                ..ObjectReference::default()
            },
            reason: Some("Touched".into()),
            message: Some("written through the core API".into()),
            type_: Some("Normal".into()),
            count: Some(3),
            ..CoreEvent::default()
        };
        core.create(&PostParams::default(), &legacy)
            .await
            .expect("create a core event");
        let seen = api
            .get("noted.legacy")
            .await
            .expect("the core event through events.k8s.io");
        assert_eq!(seen.note.as_deref(), Some("written through the core API"));
        assert_eq!(
            seen.regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("noted")
        );
        assert_eq!(seen.deprecated_count, Some(3));
        let both = api
            .list(&ListParams::default().fields("regarding.name=noted"))
            .await
            .expect("list both");
        assert_eq!(both.items.len(), 2);

        let sloppy = ApiEvent {
            metadata: ObjectMeta {
                name: Some("sloppy".into()),
                ..ObjectMeta::default()
            },
            reason: Some("Whatever".into()),
            ..ApiEvent::default()
        };
        match api.create(&PostParams::default(), &sloppy).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                assert!(
                    e.message.contains("reportingController: Required value"),
                    "{}",
                    e.message
                );
                assert!(
                    e.message.contains("action: Required value"),
                    "{}",
                    e.message
                );
            }
            other => panic!("a sloppy events.k8s.io Event was accepted: {other:?}"),
        }
    })
    .await
    .expect("timed out");
    let described = server.ok(
        &skiff_testkit::kubectl_135(),
        &["describe", "configmap", "noted"],
    );
    assert!(described.contains("Noticed"), "{described}");
    assert!(described.contains("seen by kube-rs"), "{described}");
}

/// kube-rs's subresource calls: `get_status`, a pod's ephemeral containers (replace, patch,
/// get; existing ones may be neither changed nor removed) and a CSR's approval (patch, get).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subresources_through_kube_rs() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    use k8s_openapi::api::core::v1::Pod;

    let server = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    tokio::time::timeout(Duration::from_secs(60), async {
        let client = https_client(&server).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "debugged"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create the pod");
        let status = pods.get_status("debugged").await.expect("get status");
        assert_eq!(
            status.status.and_then(|s| s.phase).as_deref(),
            Some("Pending")
        );
        let eph = |name: &str, target: Option<&str>| {
            serde_json::from_value::<Pod>(serde_json::json!({
                "metadata": {"name": "debugged"},
                "spec": {"ephemeralContainers": [
                    {"name": name, "image": "busybox:1.36", "targetContainerName": target}
                ]},
            }))
            .expect("ephemeral containers")
        };
        let names = |p: &Pod| -> Vec<String> {
            p.spec
                .as_ref()
                .and_then(|s| s.ephemeral_containers.as_ref())
                .map(|l| {
                    let mut names: Vec<String> = l.iter().map(|c| c.name.clone()).collect();
                    names.sort();
                    names
                })
                .unwrap_or_default()
        };
        assert!(
            names(&pods.get_ephemeral_containers("debugged").await.expect("get")).is_empty()
        );
        let replaced = pods
            .replace_ephemeral_containers(
                "debugged",
                &PostParams::default(),
                &eph("dbg1", Some("app")),
            )
            .await
            .expect("replace ephemeral containers");
        assert_eq!(names(&replaced), ["dbg1"]);
        let first = &replaced.spec.as_ref().expect("spec").ephemeral_containers.as_ref().expect("list")[0];
        assert_eq!(first.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            first.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        let patched = pods
            .patch_ephemeral_containers(
                "debugged",
                &PatchParams::default(),
                &Patch::Strategic(eph("dbg2", None)),
            )
            .await
            .expect("patch ephemeral containers");
        assert_eq!(names(&patched), ["dbg1", "dbg2"]);
        assert_eq!(
            names(&pods.get_ephemeral_containers("debugged").await.expect("get")),
            ["dbg1", "dbg2"]
        );
        // The main resource still has its containers; only the ephemeral list changed.
        let got = pods.get("debugged").await.expect("get the pod");
        assert_eq!(got.spec.as_ref().expect("spec").containers[0].name, "app");

        let refused = |e: kube::Error| match e {
            kube::Error::Api(s) => (s.code, s.message),
            other => panic!("not an API error: {other}"),
        };
        // Changing an existing one, removing one, a bad target or a port: 422.
        let mut changed = patched.clone();
        for c in changed.spec.as_mut().expect("spec").ephemeral_containers.as_mut().expect("list") {
            if c.name == "dbg1" {
                c.image = Some("busybox:1.37".into());
            }
        }
        let (code, message) = refused(
            pods.replace_ephemeral_containers("debugged", &PostParams::default(), &changed)
                .await
                .expect_err("changing an existing ephemeral container"),
        );
        assert_eq!(code, 422);
        assert!(message.contains("existing ephemeral containers \"dbg1\" may not be changed"), "{message}");
        let (code, message) = refused(
            pods.replace_ephemeral_containers("debugged", &PostParams::default(), &eph("dbg2", None))
                .await
                .expect_err("removing an ephemeral container"),
        );
        assert_eq!(code, 422);
        assert!(message.contains("\"dbg1\" may not be removed"), "{message}");
        let (code, message) = refused(
            pods.patch_ephemeral_containers(
                "debugged",
                &PatchParams::default(),
                &Patch::Strategic(eph("dbg3", Some("nope"))),
            )
            .await
            .expect_err("an unknown target"),
        );
        assert_eq!(code, 422);
        assert!(message.contains("targetContainerName: Not found: \"nope\""), "{message}");
        let (code, message) = refused(
            pods.patch_ephemeral_containers(
                "debugged",
                &PatchParams::default(),
                &Patch::Strategic(serde_json::json!({"spec": {"ephemeralContainers": [
                    {"name": "dbg4", "image": "busybox", "ports": [{"containerPort": 80}]}
                ]}})),
            )
            .await
            .expect_err("a port"),
        );
        assert_eq!(code, 422);
        assert!(message.contains("cannot be set for an Ephemeral Container"), "{message}");
        // Nor can the main resource change them.
        let mut main = pods.get("debugged").await.expect("get");
        main.spec.as_mut().expect("spec").ephemeral_containers = None;
        let (code, _) = refused(
            pods.replace("debugged", &PostParams::default(), &main)
                .await
                .expect_err("an update of the pod dropping ephemeral containers"),
        );
        assert_eq!(code, 422);

        // A CSR's approval: patch it, read it back.
        let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
        let key = rcgen::KeyPair::generate().expect("key");
        let request = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("request")
            .pem()
            .expect("pem");
        let csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "approved-by-patch"},
            "spec": {
                "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, request),
                "signerName": "example.com/custom",
                "usages": ["client auth"],
            },
        }))
        .expect("csr");
        csrs.create(&PostParams::default(), &csr)
            .await
            .expect("create the csr");
        let approval = serde_json::json!({"status": {"conditions": [{
            "type": "Approved", "status": "True", "reason": "Test", "message": "by kube-rs",
        }]}});
        csrs.patch_approval(
            "approved-by-patch",
            &PatchParams::default(),
            &Patch::Merge(approval),
        )
        .await
        .expect("patch the approval");
        let got = csrs
            .get_approval("approved-by-patch")
            .await
            .expect("get the approval");
        let conditions = got.status.and_then(|s| s.conditions).unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, "Approved");
        assert!(conditions[0].last_update_time.is_some());
    })
    .await
    .expect("test timed out");
}
