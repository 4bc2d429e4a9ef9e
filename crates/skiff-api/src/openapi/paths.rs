//! The REST operations of every built-in resource, rendered into v2 and v3 documents.

use serde_json::{Map, Value, json};

use super::definitions::{DELETE_OPTIONS, Definitions, Gvk, PATCH, STATUS};
use crate::registry::{self, ResourceInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum In {
    Path,
    Query,
}

/// One non-body parameter.
#[derive(Debug)]
pub(super) struct Param {
    pub name: &'static str,
    pub location: In,
    pub ty: &'static str,
    pub description: &'static str,
}

macro_rules! params {
    ($($id:ident = $name:literal, $loc:ident, $ty:literal, $desc:literal;)*) => {
        $(static $id: Param = Param {
            name: $name,
            location: In::$loc,
            ty: $ty,
            description: $desc,
        };)*
    };
}

params! {
    NAME = "name", Path, "string", "name of the resource";
    NAMESPACE = "namespace", Path, "string", "object name and auth scope, such as for teams and projects";
    PRETTY = "pretty", Query, "string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).";
    ALLOW_WATCH_BOOKMARKS = "allowWatchBookmarks", Query, "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.";
    CONTINUE = "continue", Query, "string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token.";
    FIELD_SELECTOR = "fieldSelector", Query, "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything.";
    LABEL_SELECTOR = "labelSelector", Query, "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything.";
    LIMIT = "limit", Query, "integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.";
    RESOURCE_VERSION = "resourceVersion", Query, "string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset";
    RESOURCE_VERSION_MATCH = "resourceVersionMatch", Query, "string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset";
    SEND_INITIAL_EVENTS = "sendInitialEvents", Query, "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent.";
    TIMEOUT_SECONDS = "timeoutSeconds", Query, "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.";
    WATCH = "watch", Query, "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.";
    DRY_RUN = "dryRun", Query, "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed";
    FIELD_MANAGER = "fieldManager", Query, "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";
    FIELD_VALIDATION = "fieldValidation", Query, "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.";
    FORCE = "force", Query, "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.";
    GRACE_PERIOD_SECONDS = "gracePeriodSeconds", Query, "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.";
    IGNORE_STORE_READ_ERROR = "ignoreStoreReadErrorWithClusterBreakingPotential", Query, "boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. The default value is false, and the user must opt in to enable it";
    ORPHAN_DEPENDENTS = "orphanDependents", Query, "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.";
    PROPAGATION_POLICY = "propagationPolicy", Query, "string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.";
    CONTAINER = "container", Query, "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod.";
    FOLLOW = "follow", Query, "boolean", "Follow the log stream of the pod. Defaults to false.";
    INSECURE_SKIP_TLS = "insecureSkipTLSVerifyBackend", Query, "boolean", "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to.";
    LIMIT_BYTES = "limitBytes", Query, "integer", "If set, the number of bytes to read from the server before terminating the log output.";
    PREVIOUS = "previous", Query, "boolean", "Return previous terminated container logs. Defaults to false.";
    SINCE_SECONDS = "sinceSeconds", Query, "integer", "A relative time in seconds before the current time from which to show logs.";
    STREAM = "stream", Query, "string", "Specify which container log stream to return to the client. Acceptable values are \"All\", \"Stdout\" and \"Stderr\". If not specified, \"All\" is used, and both stdout and stderr are returned interleaved.";
    TAIL_LINES = "tailLines", Query, "integer", "If set, the number of lines from the end of the logs to show.";
    TIMESTAMPS = "timestamps", Query, "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.";
}

static LIST_PARAMS: &[&Param] = &[
    &ALLOW_WATCH_BOOKMARKS,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
    &WATCH,
];
static WRITE_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
static PATCH_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
static DELETE_PARAMS: &[&Param] = &[
    &DRY_RUN,
    &GRACE_PERIOD_SECONDS,
    &IGNORE_STORE_READ_ERROR,
    &ORPHAN_DEPENDENTS,
    &PROPAGATION_POLICY,
];
static DELETE_COLLECTION_PARAMS: &[&Param] = &[
    &CONTINUE,
    &DRY_RUN,
    &FIELD_SELECTOR,
    &GRACE_PERIOD_SECONDS,
    &IGNORE_STORE_READ_ERROR,
    &LABEL_SELECTOR,
    &LIMIT,
    &ORPHAN_DEPENDENTS,
    &PROPAGATION_POLICY,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
];
static LOG_PARAMS: &[&Param] = &[
    &CONTAINER,
    &FOLLOW,
    &INSECURE_SKIP_TLS,
    &LIMIT_BYTES,
    &PREVIOUS,
    &SINCE_SECONDS,
    &STREAM,
    &TAIL_LINES,
    &TIMESTAMPS,
];

pub(super) const PATCH_CONSUMES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
pub(super) const PRODUCES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
pub(super) const PRODUCES_WATCH: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
pub(super) const PRODUCES_TEXT: &[&str] = &["text/plain", "application/json", "application/yaml"];

/// What an operation answers with.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Definition(String),
    Text,
}

#[derive(Debug)]
pub(super) struct Operation {
    /// "get", "put", "post", "delete" or "patch".
    pub method: &'static str,
    pub id: String,
    pub description: String,
    /// x-kubernetes-action.
    pub action: &'static str,
    pub gvk: Gvk,
    pub params: &'static [&'static Param],
    pub request: Option<String>,
    pub response: Body,
    /// Success codes beyond 200 (201 Created, 202 Accepted).
    pub also: &'static [&'static str],
    pub consumes: &'static [&'static str],
    pub produces: &'static [&'static str],
    pub tag: String,
}

#[derive(Debug)]
pub(super) struct PathItem {
    pub path: String,
    /// Path-level parameters.
    pub params: Vec<&'static Param>,
    pub ops: Vec<Operation>,
}

/// Every path of one group-version, sorted.
#[derive(Debug)]
pub(super) struct GroupVersionPaths {
    /// "api/v1" or "apis/GROUP/VERSION": the v3 discovery key.
    pub key: String,
    pub paths: Vec<PathItem>,
}

fn camel_group(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let short = group.strip_suffix(".k8s.io").unwrap_or(group);
    short.split('.').map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn tag(group: &str, version: &str) -> String {
    let camel = camel_group(group);
    let mut chars = camel.chars();
    let lower = match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

/// Builds the operations of one resource into `out`.
struct ResourceOps<'a> {
    r: &'static ResourceInfo,
    defs: &'a Definitions,
    gvk: Gvk,
    def: String,
    /// e.g. "AppsV1", "CoreV1".
    gv_camel: String,
    tag: String,
    /// "/apis/apps/v1" or "/api/v1".
    prefix: String,
}

impl ResourceOps<'_> {
    fn op(
        &self,
        method: &'static str,
        id: String,
        description: String,
        action: &'static str,
    ) -> Operation {
        Operation {
            method,
            id,
            description,
            action,
            gvk: self.gvk,
            params: &[],
            request: None,
            response: Body::Definition(self.def.clone()),
            also: &[],
            consumes: &["*/*"],
            produces: PRODUCES,
            tag: self.tag.clone(),
        }
    }

    /// "NamespacedDeployment" or "Node".
    fn scoped_kind(&self) -> String {
        if self.r.namespaced {
            format!("Namespaced{}", self.r.kind)
        } else {
            self.r.kind.to_string()
        }
    }

    fn collection_path(&self) -> String {
        if self.r.namespaced {
            format!("{}/namespaces/{{namespace}}/{}", self.prefix, self.r.plural)
        } else {
            format!("{}/{}", self.prefix, self.r.plural)
        }
    }

    fn scope_params(&self) -> Vec<&'static Param> {
        if self.r.namespaced {
            vec![&NAMESPACE, &PRETTY]
        } else {
            vec![&PRETTY]
        }
    }

    fn item_params(&self) -> Vec<&'static Param> {
        if self.r.namespaced {
            vec![&NAME, &NAMESPACE, &PRETTY]
        } else {
            vec![&NAME, &PRETTY]
        }
    }

    fn build(&self, out: &mut Vec<PathItem>) {
        let r = self.r;
        let gv = &self.gv_camel;
        let sk = self.scoped_kind();
        let kind = r.kind;
        let has = |verb: &str| r.verbs.contains(&verb);

        let mut collection = Vec::new();
        if has("list")
            && let Some(list) = self.defs.list_of(self.gvk)
        {
            collection.push(Operation {
                params: LIST_PARAMS,
                response: Body::Definition(list),
                produces: PRODUCES_WATCH,
                ..self.op(
                    "get",
                    format!("list{gv}{sk}"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                )
            });
        }
        if has("create") {
            collection.push(Operation {
                params: WRITE_PARAMS,
                request: Some(self.def.clone()),
                also: &["201", "202"],
                ..self.op(
                    "post",
                    format!("create{gv}{sk}"),
                    format!("create {article} {kind}", article = article(kind)),
                    "post",
                )
            });
        }
        if has("deletecollection") {
            collection.push(Operation {
                params: DELETE_COLLECTION_PARAMS,
                request: Some(DELETE_OPTIONS.into()),
                response: Body::Definition(STATUS.into()),
                ..self.op(
                    "delete",
                    format!("delete{gv}Collection{sk}"),
                    format!("delete collection of {kind}"),
                    "deletecollection",
                )
            });
        }
        if !collection.is_empty() {
            out.push(PathItem {
                path: self.collection_path(),
                params: self.scope_params(),
                ops: collection,
            });
        }

        let item_path = format!("{}/{{name}}", self.collection_path());
        let mut item = Vec::new();
        if has("get") {
            item.push(self.op(
                "get",
                format!("read{gv}{sk}"),
                format!("read the specified {kind}"),
                "get",
            ));
        }
        if has("update") {
            item.push(Operation {
                params: WRITE_PARAMS,
                request: Some(self.def.clone()),
                also: &["201"],
                ..self.op(
                    "put",
                    format!("replace{gv}{sk}"),
                    format!("replace the specified {kind}"),
                    "put",
                )
            });
        }
        if has("patch") {
            item.push(Operation {
                params: PATCH_PARAMS,
                request: Some(PATCH.into()),
                also: &["201"],
                consumes: PATCH_CONSUMES,
                ..self.op(
                    "patch",
                    format!("patch{gv}{sk}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                )
            });
        }
        if has("delete") {
            item.push(Operation {
                params: DELETE_PARAMS,
                request: Some(DELETE_OPTIONS.into()),
                response: Body::Definition(STATUS.into()),
                also: &["202"],
                ..self.op(
                    "delete",
                    format!("delete{gv}{sk}"),
                    format!("delete {article} {kind}", article = article(kind)),
                    "delete",
                )
            });
        }
        if !item.is_empty() {
            out.push(PathItem {
                path: item_path.clone(),
                params: self.item_params(),
                ops: item,
            });
        }

        if r.namespaced
            && has("list")
            && let Some(list) = self.defs.list_of(self.gvk)
        {
            out.push(PathItem {
                path: format!("{}/{}", self.prefix, r.plural),
                params: vec![&PRETTY],
                ops: vec![Operation {
                    params: LIST_PARAMS,
                    response: Body::Definition(list),
                    produces: PRODUCES_WATCH,
                    ..self.op(
                        "get",
                        format!("list{gv}{kind}ForAllNamespaces"),
                        format!("list or watch objects of kind {kind}"),
                        "list",
                    )
                }],
            });
        }

        for sub in r.subresources {
            self.subresource(sub, &item_path, out);
        }
    }

    /// A subresource whose body is the object itself (status, approval, ...).
    fn read_write(&self, sub: &str, path: String, gvk: Gvk, def: &str, what: &str) -> PathItem {
        let gv = &self.gv_camel;
        let name = format!("{}{}", self.scoped_kind(), capitalize(sub));
        let with = |mut op: Operation| {
            op.gvk = gvk;
            op.response = Body::Definition(def.to_string());
            op
        };
        PathItem {
            path,
            params: self.item_params(),
            ops: vec![
                with(self.op(
                    "get",
                    format!("read{gv}{name}"),
                    format!("read {what} of the specified {}", self.r.kind),
                    "get",
                )),
                with(Operation {
                    params: WRITE_PARAMS,
                    request: Some(def.to_string()),
                    also: &["201"],
                    ..self.op(
                        "put",
                        format!("replace{gv}{name}"),
                        format!("replace {what} of the specified {}", self.r.kind),
                        "put",
                    )
                }),
                with(Operation {
                    params: PATCH_PARAMS,
                    request: Some(PATCH.into()),
                    also: &["201"],
                    consumes: PATCH_CONSUMES,
                    ..self.op(
                        "patch",
                        format!("patch{gv}{name}"),
                        format!("partially update {what} of the specified {}", self.r.kind),
                        "patch",
                    )
                }),
            ],
        }
    }

    /// A subresource that only takes a POST of another kind (eviction, binding, token).
    fn create_only(&self, sub: &str, path: String, gvk: Gvk) -> Option<PathItem> {
        let def = self.defs.of(gvk)?.to_string();
        let gv = &self.gv_camel;
        let name = format!("{}{}", self.scoped_kind(), capitalize(sub));
        Some(PathItem {
            path,
            params: self.item_params(),
            ops: vec![Operation {
                gvk,
                params: WRITE_PARAMS,
                request: Some(def.clone()),
                response: Body::Definition(def),
                also: &["201", "202"],
                ..self.op(
                    "post",
                    format!("create{gv}{name}"),
                    format!(
                        "create {sub} of {article} {}",
                        self.r.kind,
                        article = article(self.r.kind)
                    ),
                    "post",
                )
            }],
        })
    }

    fn subresource(&self, sub: &str, item_path: &str, out: &mut Vec<PathItem>) {
        let path = format!("{item_path}/{sub}");
        let gvk = |group, version, kind| Gvk {
            group,
            version,
            kind,
        };
        match sub {
            "status" | "approval" | "ephemeralcontainers" | "resize" => {
                out.push(self.read_write(sub, path, self.gvk, &self.def, sub));
            }
            "scale" => {
                let scale = gvk("autoscaling", "v1", "Scale");
                if let Some(def) = self.defs.of(scale) {
                    out.push(self.read_write(sub, path, scale, def, "scale"));
                }
            }
            "eviction" => out.extend(self.create_only(sub, path, gvk("policy", "v1", "Eviction"))),
            "binding" => out.extend(self.create_only(sub, path, gvk("", "v1", "Binding"))),
            "token" => out.extend(self.create_only(
                sub,
                path,
                gvk("authentication.k8s.io", "v1", "TokenRequest"),
            )),
            "finalize" => {
                let gv = &self.gv_camel;
                out.push(PathItem {
                    path,
                    params: vec![&NAME, &PRETTY],
                    ops: vec![Operation {
                        params: WRITE_PARAMS,
                        request: Some(self.def.clone()),
                        also: &["201"],
                        ..self.op(
                            "put",
                            format!("replace{gv}{}Finalize", self.r.kind),
                            format!("replace finalize of the specified {}", self.r.kind),
                            "put",
                        )
                    }],
                });
            }
            "log" => {
                let gv = &self.gv_camel;
                out.push(PathItem {
                    path,
                    params: self.item_params(),
                    ops: vec![Operation {
                        params: LOG_PARAMS,
                        response: Body::Text,
                        produces: PRODUCES_TEXT,
                        ..self.op(
                            "get",
                            format!("read{gv}{}Log", self.scoped_kind()),
                            format!("read log of the specified {}", self.r.kind),
                            "get",
                        )
                    }],
                });
            }
            // Streaming subresources (exec, attach, portforward, proxy) are upgrades, not
            // documented operations with schemas.
            _ => {}
        }
    }
}

fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

/// The paths of every served group-version, in discovery order.
pub(super) fn build(defs: &Definitions) -> Vec<GroupVersionPaths> {
    let mut out = Vec::new();
    for g in registry::group_versions() {
        for version in g.versions {
            let (key, prefix) = if g.group.is_empty() {
                (format!("api/{version}"), format!("/api/{version}"))
            } else {
                (
                    format!("apis/{}/{version}", g.group),
                    format!("/apis/{}/{version}", g.group),
                )
            };
            let mut paths = Vec::new();
            for r in registry::resources_of(g.group, version) {
                let gvk = Gvk {
                    group: r.group,
                    version: r.version,
                    kind: r.kind,
                };
                let Some(def) = defs.of(gvk) else {
                    continue;
                };
                ResourceOps {
                    r,
                    defs,
                    gvk,
                    def: def.to_string(),
                    gv_camel: format!("{}{}", camel_group(g.group), capitalize(version)),
                    tag: tag(g.group, version),
                    prefix: prefix.clone(),
                }
                .build(&mut paths);
            }
            paths.sort_by(|a, b| a.path.cmp(&b.path));
            out.push(GroupVersionPaths { key, paths });
        }
    }
    out
}

fn param_v2(p: &Param) -> Value {
    let mut m = Map::new();
    m.insert("uniqueItems".into(), true.into());
    m.insert("type".into(), p.ty.into());
    m.insert("description".into(), p.description.into());
    m.insert("name".into(), p.name.into());
    m.insert(
        "in".into(),
        match p.location {
            In::Path => "path",
            In::Query => "query",
        }
        .into(),
    );
    if p.location == In::Path {
        m.insert("required".into(), true.into());
    }
    Value::Object(m)
}

fn param_v3(p: &Param) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), p.name.into());
    m.insert(
        "in".into(),
        match p.location {
            In::Path => "path",
            In::Query => "query",
        }
        .into(),
    );
    m.insert("description".into(), p.description.into());
    if p.location == In::Path {
        m.insert("required".into(), true.into());
    }
    m.insert("schema".into(), json!({"type": p.ty, "uniqueItems": true}));
    Value::Object(m)
}

fn status_text(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

/// One path item of a Swagger 2.0 document.
pub(super) fn path_item_v2(item: &PathItem, ref_prefix: &str) -> Value {
    let mut m = Map::new();
    for op in &item.ops {
        let mut o = Map::new();
        o.insert("description".into(), op.description.clone().into());
        o.insert("consumes".into(), json!(op.consumes));
        o.insert("produces".into(), json!(op.produces));
        o.insert("schemes".into(), json!(["https"]));
        o.insert("tags".into(), json!([op.tag]));
        o.insert("operationId".into(), op.id.clone().into());
        let mut params: Vec<Value> = Vec::new();
        if let Some(body) = &op.request {
            params.push(json!({
                "name": "body",
                "in": "body",
                "required": op.method != "delete",
                "schema": {"$ref": format!("{ref_prefix}{body}")},
            }));
        }
        params.extend(op.params.iter().map(|p| param_v2(p)));
        if !params.is_empty() {
            o.insert("parameters".into(), Value::Array(params));
        }
        let schema = match &op.response {
            Body::Definition(d) => json!({"$ref": format!("{ref_prefix}{d}")}),
            Body::Text => json!({"type": "string"}),
        };
        let mut responses = Map::new();
        for code in std::iter::once(&"200").chain(op.also.iter()) {
            responses.insert(
                (*code).to_string(),
                json!({"description": status_text(code), "schema": schema}),
            );
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        o.insert("responses".into(), Value::Object(responses));
        o.insert("x-kubernetes-action".into(), op.action.into());
        o.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
        m.insert(op.method.into(), Value::Object(o));
    }
    m.insert(
        "parameters".into(),
        Value::Array(item.params.iter().map(|p| param_v2(p)).collect()),
    );
    Value::Object(m)
}

/// One path item of an OpenAPI 3.0 document.
pub(super) fn path_item_v3(item: &PathItem, ref_prefix: &str) -> Value {
    let mut m = Map::new();
    for op in &item.ops {
        let mut o = Map::new();
        o.insert("tags".into(), json!([op.tag]));
        o.insert("description".into(), op.description.clone().into());
        o.insert("operationId".into(), op.id.clone().into());
        if !op.params.is_empty() {
            o.insert(
                "parameters".into(),
                Value::Array(op.params.iter().map(|p| param_v3(p)).collect()),
            );
        }
        if let Some(body) = &op.request {
            let schema = json!({"$ref": format!("{ref_prefix}{body}")});
            let content: Map<String, Value> = op
                .consumes
                .iter()
                .map(|c| ((*c).to_string(), json!({"schema": schema})))
                .collect();
            o.insert(
                "requestBody".into(),
                json!({"content": content, "required": op.method != "delete"}),
            );
        }
        let schema = match &op.response {
            Body::Definition(d) => json!({"$ref": format!("{ref_prefix}{d}")}),
            Body::Text => json!({"type": "string"}),
        };
        let content: Map<String, Value> = op
            .produces
            .iter()
            .map(|c| ((*c).to_string(), json!({"schema": schema})))
            .collect();
        let mut responses = Map::new();
        for code in std::iter::once(&"200").chain(op.also.iter()) {
            responses.insert(
                (*code).to_string(),
                json!({"description": status_text(code), "content": content}),
            );
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        o.insert("responses".into(), Value::Object(responses));
        o.insert("x-kubernetes-action".into(), op.action.into());
        o.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
        m.insert(op.method.into(), Value::Object(o));
    }
    m.insert(
        "parameters".into(),
        Value::Array(item.params.iter().map(|p| param_v3(p)).collect()),
    );
    Value::Object(m)
}
