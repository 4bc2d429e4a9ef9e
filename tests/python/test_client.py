"""The official Python `kubernetes` client against a `skiff server --no-agent` it starts itself.

Covers CRUD of ConfigMaps, Deployments and Services (with 404 and 409 errors), list with
limit/continue, watch from a resourceVersion, `utils.create_from_yaml`, and the access and
token reviews, the exact text of a failure as the client prints it, and typed reads of
new workloads whose models require status fields.
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 30  # seconds for every request (pytest-timeout is not installed)


def skiff_bin():
    path = Path(os.environ.get("SKIFF_BIN", REPO / "target" / "debug" / "skiff"))
    if not path.exists():
        pytest.fail(f"skiff binary not found at {path}: run `cargo build -p skiff` or set SKIFF_BIN")
    return path


@pytest.fixture(scope="module")
def api_client():
    data_dir = tempfile.mkdtemp(prefix="skiff-pytest-")
    kubeconfig = Path(data_dir) / "admin.kubeconfig"
    log = open(Path(data_dir) / "server.log", "wb")
    proc = subprocess.Popen(
        [
            str(skiff_bin()),
            "server",
            "--no-agent",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            "0",
            "--data-dir",
            data_dir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not (kubeconfig.exists() and "server: https://" in kubeconfig.read_text()):
            if proc.poll() is not None:
                pytest.fail(f"skiff server exited ({proc.returncode}): {(Path(data_dir) / 'server.log').read_text()}")
            if time.monotonic() > deadline:
                pytest.fail("skiff server wrote no kubeconfig in 30 s")
            time.sleep(0.02)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        # The kubeconfig is written when the server is ready; check that it answers.
        assert client.VersionApi(api).get_code(_request_timeout=TIMEOUT).minor.startswith("35")
        yield api
        api.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def namespace(api_client):
    core = client.CoreV1Api(api_client)
    name = "t-" + uuid.uuid4().hex[:10]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)), _request_timeout=TIMEOUT)
    yield name
    core.delete_namespace(name, _request_timeout=TIMEOUT)


def status_of(call, *args, **kwargs):
    """The HTTP status of the ApiException `call` raises."""
    with pytest.raises(ApiException) as err:
        call(*args, _request_timeout=TIMEOUT, **kwargs)
    return err.value.status


def test_configmap_crud(api_client, namespace):
    core = client.CoreV1Api(api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"app": "demo"}), data={"a": "1"})
    created = core.create_namespaced_config_map(namespace, body, _request_timeout=TIMEOUT)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert created.data == {"a": "1"}

    # A second create of the same name: 409 AlreadyExists.
    assert status_of(core.create_namespaced_config_map, namespace, body) == 409

    got = core.read_namespaced_config_map("settings", namespace, _request_timeout=TIMEOUT)
    assert got.data == {"a": "1"} and got.metadata.labels == {"app": "demo"}

    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("settings", namespace, got, _request_timeout=TIMEOUT)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    # Replacing with the old resourceVersion: 409 Conflict.
    stale = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", resource_version=created.metadata.resource_version),
        data={"c": "3"},
    )
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("settings", namespace, stale, _request_timeout=TIMEOUT)
    assert err.value.status == 409
    assert '"reason":"Conflict"' in err.value.body.replace(" ", "")

    patched = core.patch_namespaced_config_map(
        "settings", namespace, {"data": {"c": "3"}, "metadata": {"labels": {"tier": "x"}}}, _request_timeout=TIMEOUT
    )
    assert patched.data == {"a": "1", "b": "2", "c": "3"}
    assert patched.metadata.labels == {"app": "demo", "tier": "x"}

    json_patched = core.patch_namespaced_config_map(
        "settings", namespace, [{"op": "remove", "path": "/data/a"}], _request_timeout=TIMEOUT
    )
    assert json_patched.data == {"b": "2", "c": "3"}

    core.delete_namespaced_config_map("settings", namespace, _request_timeout=TIMEOUT)
    assert status_of(core.read_namespaced_config_map, "settings", namespace) == 404
    assert status_of(core.delete_namespaced_config_map, "settings", namespace) == 404
    assert status_of(core.replace_namespaced_config_map, "settings", namespace, body) == 404


def deployment(name, replicas=1):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="web", image="nginx:1.27", ports=[client.V1ContainerPort(container_port=80)]
                        )
                    ]
                ),
            ),
        ),
    )


def test_deployment_crud(api_client, namespace):
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment(namespace, deployment("web"), _request_timeout=TIMEOUT)
    assert created.spec.replicas == 1
    assert created.metadata.generation == 1
    # Upstream's defaults come back.
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert status_of(apps.create_namespaced_deployment, namespace, deployment("web")) == 409

    scaled = apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}}, _request_timeout=TIMEOUT)
    assert scaled.spec.replicas == 3
    assert scaled.metadata.generation == 2

    scale = apps.read_namespaced_deployment_scale("web", namespace, _request_timeout=TIMEOUT)
    assert scale.spec.replicas == 3

    # The deployment controller writes status meanwhile: read-modify-write until no conflict,
    # as clients do against any cluster.
    for _ in range(20):
        current = apps.read_namespaced_deployment("web", namespace, _request_timeout=TIMEOUT)
        current.spec.template.spec.containers[0].image = "nginx:1.28"
        try:
            replaced = apps.replace_namespaced_deployment("web", namespace, current, _request_timeout=TIMEOUT)
            break
        except client.exceptions.ApiException as e:
            if e.status != 409:
                raise
    else:
        raise AssertionError("replace kept conflicting")
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.28"
    assert replaced.metadata.generation == 3

    # A stale resourceVersion on replace is a Conflict.
    assert status_of(apps.replace_namespaced_deployment, "web", namespace, current) == 409

    names = [d.metadata.name for d in apps.list_namespaced_deployment(namespace, _request_timeout=TIMEOUT).items]
    assert names == ["web"]

    apps.delete_namespaced_deployment("web", namespace, _request_timeout=TIMEOUT)
    assert status_of(apps.read_namespaced_deployment, "web", namespace) == 404


def test_service_crud(api_client, namespace):
    core = client.CoreV1Api(api_client)
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    created = core.create_namespaced_service(namespace, svc, _request_timeout=TIMEOUT)
    assert created.spec.type == "ClusterIP"
    assert created.spec.cluster_ip and created.spec.cluster_ip.startswith("10.43.")
    assert created.spec.ports[0].protocol == "TCP"
    assert status_of(core.create_namespaced_service, namespace, svc) == 409

    patched = core.patch_namespaced_service(
        "web", namespace, {"metadata": {"annotations": {"note": "hi"}}}, _request_timeout=TIMEOUT
    )
    assert patched.metadata.annotations == {"note": "hi"}
    assert patched.spec.cluster_ip == created.spec.cluster_ip

    got = core.read_namespaced_service("web", namespace, _request_timeout=TIMEOUT)
    got.spec.ports[0].port = 81
    replaced = core.replace_namespaced_service("web", namespace, got, _request_timeout=TIMEOUT)
    assert replaced.spec.ports[0].port == 81
    assert replaced.spec.cluster_ip == created.spec.cluster_ip

    core.delete_namespaced_service("web", namespace, _request_timeout=TIMEOUT)
    assert status_of(core.read_namespaced_service, "web", namespace) == 404


def test_list_with_limit_and_continue(api_client, namespace):
    core = client.CoreV1Api(api_client)
    names = [f"cm-{i:02d}" for i in range(25)]
    for n in names:
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=n, labels={"batch": "b"}), data={"n": n}),
            _request_timeout=TIMEOUT,
        )

    # Controllers may add objects of their own to a namespace (kube-root-ca.crt): count them in.
    full = core.list_namespaced_config_map(namespace, _request_timeout=TIMEOUT)
    all_names = [c.metadata.name for c in full.items]
    assert all_names == sorted(all_names) and set(names) <= set(all_names)
    assert not full.metadata._continue and full.metadata.remaining_item_count is None
    total = len(all_names)

    first = core.list_namespaced_config_map(namespace, limit=10, _request_timeout=TIMEOUT)
    assert [c.metadata.name for c in first.items] == all_names[:10]
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == total - 10

    # A change after the first page is not seen by the pages that follow: they are of one snapshot.
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-99", labels={"batch": "b"})),
        _request_timeout=TIMEOUT,
    )

    second = core.list_namespaced_config_map(
        namespace, limit=10, _continue=first.metadata._continue, _request_timeout=TIMEOUT
    )
    assert [c.metadata.name for c in second.items] == all_names[10:20]
    assert second.metadata.remaining_item_count == total - 20
    assert second.metadata.resource_version == first.metadata.resource_version

    third = core.list_namespaced_config_map(
        namespace, limit=10, _continue=second.metadata._continue, _request_timeout=TIMEOUT
    )
    assert [c.metadata.name for c in third.items] == all_names[20:30]
    pages = [first, second, third]
    while pages[-1].metadata._continue:
        pages.append(
            core.list_namespaced_config_map(
                namespace, limit=10, _continue=pages[-1].metadata._continue, _request_timeout=TIMEOUT
            )
        )
    assert [c.metadata.name for p in pages for c in p.items] == all_names
    assert pages[-1].metadata.remaining_item_count is None

    # With a label selector the pages are filtered and the remaining count is unknown (unset),
    # as upstream does.
    selected = []
    token = None
    while True:
        page = core.list_namespaced_config_map(
            namespace, limit=7, label_selector="batch=b", _continue=token, _request_timeout=TIMEOUT
        )
        assert len(page.items) <= 7
        assert page.metadata.remaining_item_count is None
        selected += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert selected == names + ["cm-99"]

    # An empty list is `items: []`, never null.
    empty = core.list_namespaced_config_map(namespace, label_selector="batch=none", _request_timeout=TIMEOUT)
    assert empty.items == []

    assert status_of(core.list_namespaced_config_map, namespace, limit=10, _continue="not-a-token") == 400


def test_watch_from_resource_version(api_client, namespace):
    core = client.CoreV1Api(api_client)

    def cm(name, data):
        return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)

    core.create_namespaced_config_map(namespace, cm("before", {"v": "0"}), _request_timeout=TIMEOUT)
    rv = core.list_namespaced_config_map(namespace, _request_timeout=TIMEOUT).metadata.resource_version

    core.create_namespaced_config_map(namespace, cm("watched", {"v": "1"}), _request_timeout=TIMEOUT)
    core.patch_namespaced_config_map("watched", namespace, {"data": {"v": "2"}}, _request_timeout=TIMEOUT)
    core.delete_namespaced_config_map("watched", namespace, _request_timeout=TIMEOUT)

    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        timeout_seconds=10,
        _request_timeout=TIMEOUT,
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("v"), obj.metadata.resource_version))
        if event["type"] == "DELETED":
            w.stop()

    assert [(t, n, v) for t, n, v, _ in seen] == [
        ("ADDED", "watched", "1"),
        ("MODIFIED", "watched", "2"),
        ("DELETED", "watched", "2"),
    ], seen
    versions = [int(r) for _, _, _, r in seen]
    assert versions == sorted(versions) and versions[0] > int(rv)

    # A watch with nothing to report ends at timeoutSeconds.
    start = time.monotonic()
    quiet = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=str(versions[-1]),
            timeout_seconds=1,
            _request_timeout=TIMEOUT,
        )
    )
    assert quiet == []
    assert time.monotonic() - start < 10


MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: shop
        image: busybox
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: shop}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  greeting: hello
"""


def test_create_from_yaml(api_client, namespace, tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(MANIFEST)
    created = utils.create_from_yaml(api_client, str(path), namespace=namespace)
    kinds = sorted(type(o).__name__ for group in created for o in group)
    assert kinds == ["V1ConfigMap", "V1Deployment", "V1Service"]

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    assert apps.read_namespaced_deployment("shop", namespace, _request_timeout=TIMEOUT).spec.replicas == 2
    assert core.read_namespaced_service("shop", namespace, _request_timeout=TIMEOUT).spec.ports[0].port == 80
    cfg = core.read_namespaced_config_map("shop-config", namespace, _request_timeout=TIMEOUT)
    assert cfg.data == {"greeting": "hello"}

    # Creating the same objects again fails with AlreadyExists for each.
    with pytest.raises(utils.FailToCreateError) as err:
        utils.create_from_yaml(api_client, str(path), namespace=namespace)
    assert sorted(e.status for e in err.value.api_exceptions) == [409, 409, 409]
    # The client prints each failure's body as it came: upstream's field order and newline.
    assert (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"deployments.apps \\"shop\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"shop","group":"apps",'
        '"kind":"deployments"},"code":409}\n'
    ) in str(err.value)


TEMPLATE = {
    "metadata": {"labels": {"app": "w"}},
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
}


def test_typed_status_of_new_workloads(api_client, namespace):
    """The client's models require some status fields (`replicas`, the DaemonSet counts, ...)
    that upstream writes as zero on create, before any controller has looked."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    policy, autoscaling = client.PolicyV1Api(api_client), client.AutoscalingV2Api(api_client)
    selector = {"matchLabels": {"app": "w"}}
    rc = core.create_namespaced_replication_controller(
        namespace,
        {"metadata": {"name": "w"}, "spec": {"replicas": 0, "selector": {"app": "w"}, "template": TEMPLATE}},
        _request_timeout=TIMEOUT,
    )
    assert rc.status.replicas == 0
    rs = apps.create_namespaced_replica_set(
        namespace,
        {"metadata": {"name": "w"}, "spec": {"replicas": 0, "selector": selector, "template": TEMPLATE}},
        _request_timeout=TIMEOUT,
    )
    assert rs.status.replicas == 0
    sts = apps.create_namespaced_stateful_set(
        namespace,
        {"metadata": {"name": "w"}, "spec": {"replicas": 0, "selector": selector, "template": TEMPLATE}},
        _request_timeout=TIMEOUT,
    )
    assert sts.status.replicas == 0
    ds = apps.create_namespaced_daemon_set(
        namespace, {"metadata": {"name": "w"}, "spec": {"selector": selector, "template": TEMPLATE}}, _request_timeout=TIMEOUT
    )
    assert (ds.status.desired_number_scheduled, ds.status.number_ready) == (0, 0)
    pdb = policy.create_namespaced_pod_disruption_budget(
        namespace, {"metadata": {"name": "w"}, "spec": {"minAvailable": 1, "selector": selector}}, _request_timeout=TIMEOUT
    )
    assert pdb.status.expected_pods == 0
    hpa = autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {"metadata": {"name": "w"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "w"}}},
        _request_timeout=TIMEOUT,
    )
    assert hpa.status.desired_replicas == 0
    # Reads and lists decode too, whatever the controllers have written since.
    assert core.read_namespaced_replication_controller("w", namespace, _request_timeout=TIMEOUT).status.replicas == 0
    assert len(apps.list_namespaced_daemon_set(namespace, _request_timeout=TIMEOUT).items) == 1
    assert len(policy.list_namespaced_pod_disruption_budget(namespace, _request_timeout=TIMEOUT).items) == 1


def test_access_and_token_reviews(api_client, namespace):
    """Reviews are answered, not stored: SubjectAccessReview, LocalSubjectAccessReview and
    TokenReview through the client's typed APIs, with upstream's validation errors."""
    authz = client.AuthorizationV1Api(api_client)
    attrs = client.V1ResourceAttributes(verb="list", resource="pods", namespace=namespace)
    admin = authz.create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user="alice", groups=["system:masters"], resource_attributes=attrs
            )
        ),
        _request_timeout=TIMEOUT,
    )
    assert admin.status.allowed is True
    alice = authz.create_namespaced_local_subject_access_review(
        namespace,
        client.V1LocalSubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(user="alice", resource_attributes=attrs)
        ),
        _request_timeout=TIMEOUT,
    )
    assert alice.status.allowed is False
    assert alice.metadata.namespace == namespace
    # Neither user nor groups: 422 with upstream's cause.
    code = status_of(
        authz.create_subject_access_review,
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(resource_attributes=attrs)
        ),
    )
    assert code == 422

    authn = client.AuthenticationV1Api(api_client)
    token = api_client.configuration.api_key["BearerToken"].split(" ", 1)[1]
    mine = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)),
        _request_timeout=TIMEOUT,
    )
    assert mine.status.authenticated is True
    assert mine.status.user.username == "system:admin"
    assert "system:masters" in mine.status.user.groups
    bogus = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token="not-a-token")),
        _request_timeout=TIMEOUT,
    )
    assert not bogus.status.authenticated
    assert bogus.status.error


def test_service_account_token_request(api_client, namespace):
    """The TokenRequest subresource issues a token that authenticates as the account, for the
    audiences it names, and is refused once the account is gone."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot")), _request_timeout=TIMEOUT
    )
    issued = core.create_namespaced_service_account_token(
        "robot",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
        _request_timeout=TIMEOUT,
    )
    assert issued.status.token and issued.status.expiration_timestamp
    authn = client.AuthenticationV1Api(api_client)

    def review(audiences=None):
        spec = client.V1TokenReviewSpec(token=issued.status.token, audiences=audiences)
        return authn.create_token_review(client.V1TokenReview(spec=spec), _request_timeout=TIMEOUT).status

    seen = review()
    assert seen.authenticated is True
    assert seen.user.username == f"system:serviceaccount:{namespace}:robot"
    assert f"system:serviceaccounts:{namespace}" in seen.user.groups
    assert not review(["elsewhere"]).authenticated
    assert (
        status_of(
            core.create_namespaced_service_account_token,
            "robot",
            namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60)),
        )
        == 422
    )
    core.delete_namespaced_service_account("robot", namespace, _request_timeout=TIMEOUT)
    assert not review().authenticated
