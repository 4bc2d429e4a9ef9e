//! The API server: shared state, the authn → authz → admission chain, routing and the HTTPS listener.

use crate::cache::WatchCache;
use crate::objects::Query;
use crate::request::{self, Route};
use crate::{alloc, crd, discovery, rest};
use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use serde_json::{Value, json};
use skiff_api::status::ApiError;
use skiff_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// What the server needs to know about its cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` clients reach this server at, for discovery.
    pub advertise_address: String,
    /// Service CIDR, e.g. `10.43.0.0/16`.
    pub service_cidr: String,
    pub admin_token: String,
    pub node_token: String,
}

/// The audience of skiff's API, as upstream's default `--api-audiences` (the service
/// account issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// A request's credentials: checked, or a signed token still to check.
enum Authn {
    Done(Result<User, ApiError>),
    Signed {
        token: String,
        impersonation: http::HeaderMap,
    },
}

/// Marks a request that arrived over the network (so it must authenticate).
#[derive(Debug, Clone, Copy)]
pub struct Remote;

/// The user and groups of the client certificate a connection presented.
#[derive(Debug, Clone)]
pub struct ClientCert(Arc<(String, Vec<String>)>);

pub struct Metrics {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub watches: AtomicU64,
}

pub struct ApiServer {
    pub store: Store,
    pub cache: WatchCache,
    pub config: Config,
    pub allocator: alloc::Allocators,
    pub resources: crd::Resources,
    pub namespaces: crate::namespaces::Namespaces,
    /// Every PriorityClass, for the priority admission of each new pod.
    pub priority_classes: crate::pods::PriorityClasses,
    /// Every LimitRange and ResourceQuota, for their admission plugins.
    pub limit_ranges: crate::admission::Namespaced,
    pub quotas: crate::admission::Namespaced,
    pub metrics: Metrics,
    pub cancel: CancellationToken,
    /// Every API watch's task, so shutdown can wait for them.
    pub watches: tokio_util::task::TaskTracker,
    /// The cluster CA certificate served at `/cacerts`, once the caller sets it.
    pub ca_pem: std::sync::OnceLock<String>,
    /// The signer of service account tokens, once the caller sets it (until then the
    /// TokenRequest subresource answers that tokens are not supported).
    pub tokens: std::sync::OnceLock<crate::tokens::Signer>,
    /// Defaults for new pods (toleration seconds), settable by the caller.
    pub pod_defaults: crate::pods::PodDefaults,
    /// Kubelet resource metrics for `metrics.k8s.io`, filled by the scraper.
    pub metrics_api: crate::metrics_api::MetricsApi,
}

impl ApiServer {
    /// Opens the server over `store`: starts the watch cache and creates the built-in namespaces.
    pub async fn new(
        store: Store,
        config: Config,
        cancel: CancellationToken,
    ) -> Result<(Arc<ApiServer>, tokio::task::JoinHandle<()>), String> {
        let rev = store
            .current_revision()
            .await
            .map_err(|e| error_chain(&e))?;
        let (cache, feeder) = WatchCache::start(store.clone(), rev, cancel.clone())
            .await
            .map_err(|e| error_chain(&e))?;
        let (resources, crd_watcher) = crd::Resources::start(&store, &cache, cancel.clone())
            .await
            .map_err(|e| error_chain(&e))?;
        let namespaces = crate::namespaces::Namespaces::start(
            &store,
            &cache,
            crate::namespaces::NAMESPACE_PREFIX,
            crate::namespaces::extract,
        )
        .await
        .map_err(|e| error_chain(&e))?;
        let priority_classes = crate::pods::PriorityClasses::start(
            &store,
            &cache,
            crate::pods::PRIORITY_CLASS_PREFIX,
            crate::pods::priority_class,
        )
        .await
        .map_err(|e| error_chain(&e))?;
        let limit_ranges = crate::admission::Namespaced::start(
            &store,
            &cache,
            crate::admission::LIMIT_RANGE_PREFIX,
            crate::admission::extract,
        )
        .await
        .map_err(|e| error_chain(&e))?;
        let quotas = crate::admission::Namespaced::start(
            &store,
            &cache,
            crate::admission::RESOURCE_QUOTA_PREFIX,
            crate::admission::extract,
        )
        .await
        .map_err(|e| error_chain(&e))?;
        let allocator = alloc::Allocators::load(&store, &config.service_cidr)
            .await
            .map_err(|e| error_chain(&e))?;
        let server = Arc::new(ApiServer {
            store,
            cache,
            config,
            allocator,
            resources,
            namespaces,
            priority_classes,
            limit_ranges,
            quotas,
            metrics: Metrics {
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                watches: AtomicU64::new(0),
            },
            cancel,
            watches: tokio_util::task::TaskTracker::new(),
            ca_pem: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
            pod_defaults: crate::pods::PodDefaults::default(),
            metrics_api: crate::metrics_api::MetricsApi::default(),
        });
        // Build the OpenAPI documents off the request path; the first write needs the schemas.
        std::thread::Builder::new()
            .name("openapi-warmup".into())
            .spawn(|| {
                let _ = crate::openapi::decode_error(
                    skiff_api::registry::all()
                        .first()
                        .expect("the registry is not empty"),
                    &serde_json::json!({}),
                );
            })
            .map_err(|e| e.to_string())?;
        rest::bootstrap(&server).await.map_err(|e| e.message)?;
        let keeper = tokio::spawn(crate::bootstrap::run(
            server.clone(),
            format!("kube-apiserver-{}", crate::objects::new_uid()),
            server.cancel.clone(),
        ));
        // One handle for the caller: the background tasks end with the cancellation token.
        let tasks = tokio::spawn(async move {
            let _ = feeder.await;
            let _ = crd_watcher.await;
            let _ = keeper.await;
        });
        Ok((server, tasks))
    }

    /// The router every client uses: over HTTPS for remote clients, in-process for co-located components.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        self.router_with(None)
    }

    /// The router for an in-process component: its requests carry `agent` as their
    /// user agent unless they name one, so its writes are managed by the component's name
    /// (`kube-scheduler`, `kube-controller-manager`), as upstream's components' are.
    pub fn router_as(self: &Arc<Self>, agent: &'static str) -> axum::Router {
        self.router_with(Some(agent))
    }

    fn router_with(self: &Arc<Self>, agent: Option<&'static str>) -> axum::Router {
        let state = self.clone();
        axum::Router::new().fallback(move |mut req: Request<Body>| {
            let state = state.clone();
            if let Some(agent) = agent
                && !req.headers().contains_key(header::USER_AGENT)
            {
                req.headers_mut()
                    .insert(header::USER_AGENT, http::HeaderValue::from_static(agent));
            }
            async move { state.handle(req).await }
        })
    }

    /// Starts deleting events `ttl` after their last write (upstream's `--event-ttl`).
    pub fn start_event_expiry(&self, ttl: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::ttl::run(
            self.store.clone(),
            self.cache.clone(),
            ttl,
            self.cancel.clone(),
        ))
    }

    /// The user a bearer token belongs to: the admin's or the nodes' token.
    pub async fn authenticate_token(&self, token: &str) -> Option<User> {
        self.review_token(token, &[API_AUDIENCE.to_string()])
            .await
            .map(|(user, _)| user)
    }

    /// Whom `token` authenticates for any of `audiences`, and for which of them (a
    /// TokenReview). Service account tokens name their audiences; the static tokens serve
    /// any.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Option<(User, Vec<String>)> {
        if crate::tokens::is_jwt(token) {
            let signer = self.tokens.get()?;
            return crate::tokens::authenticate(self, signer, token, audiences).await;
        }
        self.static_token(token).map(|u| (u, audiences.to_vec()))
    }

    /// The admin's or the nodes' token.
    fn static_token(&self, token: &str) -> Option<User> {
        if constant_time_eq(token, &self.config.admin_token) {
            Some(User {
                name: "system:admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            })
        } else if constant_time_eq(token, &self.config.node_token) {
            Some(User {
                name: "system:node".into(),
                groups: vec!["system:nodes".into(), "system:authenticated".into()],
            })
        } else {
            None
        }
    }

    /// Who sent the request, then whom it acts as (`Impersonate-*` headers); a signed token
    /// is left to [`ApiServer::authenticate_signed`], which reads the store.
    fn authenticate(&self, req: &Request<Body>) -> Authn {
        if req.extensions().get::<Remote>().is_none() {
            return Authn::Done(Ok(User {
                name: "system:apiserver".into(),
                groups: vec!["system:masters".into()],
            }));
        }
        // As upstream's authenticators are ordered: a client certificate before tokens.
        if let Some(ClientCert(cert)) = req.extensions().get::<ClientCert>() {
            let (name, groups) = cert.as_ref();
            let mut groups = groups.clone();
            groups.push("system:authenticated".into());
            let user = User {
                name: name.clone(),
                groups,
            };
            return Authn::Done(crate::authz::impersonate(req.headers(), user));
        }
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) if crate::tokens::is_jwt(t) => Authn::Signed {
                token: t.to_string(),
                impersonation: crate::authz::impersonation_headers(req.headers()),
            },
            Some(t) => Authn::Done(
                self.static_token(t)
                    .ok_or_else(ApiError::unauthorized)
                    .and_then(|u| crate::authz::impersonate(req.headers(), u)),
            ),
            None => Authn::Done(Err(ApiError::unauthorized())),
        }
    }

    async fn authenticate_signed(&self, authn: Authn) -> Result<User, ApiError> {
        match authn {
            Authn::Done(r) => r,
            Authn::Signed {
                token,
                impersonation,
            } => {
                let user = self
                    .authenticate_token(&token)
                    .await
                    .ok_or_else(ApiError::unauthorized)?;
                crate::authz::impersonate(&impersonation, user)
            }
        }
    }

    /// The authorizer (see `authz`): admins and nodes need no attributes.
    fn authorize(&self, user: &User, route: &Route, req: &Request<Body>) -> Result<(), ApiError> {
        if crate::authz::privileged(user) {
            return Ok(());
        }
        let attrs = match route {
            Route::Resource(r) => {
                crate::authz::resource_attributes(r, req.method(), &Query::parse(req.uri().query()))
            }
            _ => crate::authz::path_attributes(req.uri().path(), req.method()),
        };
        if crate::authz::authorize(user, &attrs).allowed {
            Ok(())
        } else {
            Err(crate::authz::forbidden(user, &attrs))
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        use tracing::Instrument;
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let span = tracing::debug_span!("request", %method, %path);
        self.handle_inner(req, path, method).instrument(span).await
    }

    async fn handle_inner(
        self: Arc<Self>,
        req: Request<Body>,
        path: String,
        method: http::Method,
    ) -> Response<Body> {
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = invalid_timeout(&req) {
            let (_, body) = req.into_parts();
            drain(body).await;
            return status_response(&e);
        }
        let route = request::route(&path, &self.resources);
        let auth = match route {
            // Health endpoints are open, as upstream's are to anonymous clients by default; so is
            // the CA certificate (public; agents verify it against their join token).
            Route::Health(..) | Route::CaCerts => None,
            _ => {
                let authn = self.authenticate(&req);
                Some(match self.authenticate_signed(authn).await {
                    Ok(u) => self.authorize(&u, &route, &req).map(|_| u),
                    Err(e) => Err(e),
                })
            }
        };
        // Requests answered without reading their body still get it drained, so HTTP/2 clients
        // read the answer instead of a reset stream.
        let reads_body = matches!(route, Route::Resource(_)) && matches!(auth, Some(Ok(_)));
        let req = if reads_body {
            req
        } else {
            let (parts, body) = req.into_parts();
            drain(body).await;
            Request::from_parts(parts, Body::empty())
        };
        let result = match auth {
            None if route == Route::CaCerts => match self.ca_pem.get() {
                Some(pem) => Ok(text(StatusCode::OK, pem)),
                None => Err(ApiError::no_route()),
            },
            None => match &route {
                Route::Health(endpoint, check) => {
                    let query = crate::objects::Query::parse(req.uri().query());
                    crate::health::answer(&self, endpoint, check.as_deref(), &query).await
                }
                _ => Err(ApiError::no_route()),
            },
            Some(Err(e)) => Err(e),
            Some(Ok(user)) => self.dispatch(route, req, user).await,
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                if e.code >= 500 {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%method, %path, error = %e.message, "request failed");
                }
                status_response(&e)
            }
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        route: Route,
        req: Request<Body>,
        user: User,
    ) -> Result<Response<Body>, ApiError> {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let get_only = |m: &http::Method| {
            if m == http::Method::GET || m == http::Method::HEAD {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource".to_string(),
                ))
            }
        };
        match route {
            Route::Version => {
                get_only(req.method())?;
                Ok(json_response(StatusCode::OK, &version()))
            }
            Route::Health(endpoint, check) => {
                let query = crate::objects::Query::parse(req.uri().query());
                crate::health::answer(self, endpoint, check.as_deref(), &query).await
            }
            Route::Metrics => Ok(text(StatusCode::OK, &self.metrics_text())),
            Route::OpenApiV2 => {
                get_only(req.method())?;
                let if_none_match = req
                    .headers()
                    .get(http::header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok());
                Ok(crate::openapi::v2(&accept, if_none_match, &self.resources))
            }
            Route::OpenApiV3Root => Ok(crate::openapi::v3_root(&self.resources)),
            Route::OpenApiV3(path) => crate::openapi::v3(&path, &self.resources),
            Route::CoreVersions => {
                get_only(req.method())?;
                if discovery::wants_aggregated(&accept) {
                    Ok(aggregated_response(&discovery::aggregated(
                        &self.resources,
                        true,
                    )))
                } else {
                    Ok(json_response(
                        StatusCode::OK,
                        &discovery::versions(&self.config.advertise_address),
                    ))
                }
            }
            Route::Groups => {
                get_only(req.method())?;
                if discovery::wants_aggregated(&accept) {
                    Ok(aggregated_response(&discovery::aggregated(
                        &self.resources,
                        false,
                    )))
                } else {
                    Ok(json_response(
                        StatusCode::OK,
                        &discovery::groups(&self.resources),
                    ))
                }
            }
            Route::Group(g) => discovery::group(&self.resources, &g)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(ApiError::no_route),
            Route::ResourceList { group, version } => {
                discovery::resource_list(&self.resources, &group, &version)
                    .map(|v| json_response(StatusCode::OK, &v))
                    .ok_or_else(ApiError::no_route)
            }
            Route::Resource(r) => {
                let query = Query::parse(req.uri().query());
                rest::serve(self, r, req, query, user, &accept).await
            }
            Route::MetricsApi(rest) => {
                get_only(req.method())?;
                crate::metrics_api::serve(self, &rest, req.uri().query()).await
            }
            Route::OpenIdConfiguration => {
                get_only(req.method())?;
                crate::tokens::openid_configuration(self)
            }
            Route::OpenIdKeys => {
                get_only(req.method())?;
                crate::tokens::openid_keys(self)
            }
            Route::CaCerts | Route::NotFound => Err(ApiError::no_route()),
        }
    }

    fn metrics_text(&self) -> String {
        format!(
            "# HELP apiserver_request_total Requests served.\n# TYPE apiserver_request_total counter\napiserver_request_total {}\n# HELP apiserver_request_errors_total Requests that failed with a server error.\n# TYPE apiserver_request_errors_total counter\napiserver_request_errors_total {}\n# HELP apiserver_registered_watchers Watches served since start.\n# TYPE apiserver_registered_watchers counter\napiserver_registered_watchers {}\n# HELP etcd_current_revision The store's newest revision the watch cache has seen.\n# TYPE etcd_current_revision gauge\netcd_current_revision {}\n",
            self.metrics.requests.load(Ordering::Relaxed),
            self.metrics.errors.load(Ordering::Relaxed),
            self.metrics.watches.load(Ordering::Relaxed),
            self.cache.revision(),
        )
    }
}

/// Reads and discards a request body, up to a bound.
/// A `timeout` query parameter Go cannot read, refused before anything else as upstream's
/// request deadline filter refuses it (watches, which it leaves alone, aside).
fn invalid_timeout(req: &Request<Body>) -> Option<ApiError> {
    let query = crate::objects::Query::parse(req.uri().query());
    let timeout = query.get("timeout")?;
    if timeout.is_empty() || query.flag("watch") || req.uri().path().contains("/watch/") {
        return None;
    }
    skiff_api::duration::parse_go_duration(timeout)
        .err()
        .map(|e| {
            ApiError::bad_request(format!(
                "invalid timeout specified in the request URL - {e}"
            ))
        })
}

async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > 4 * crate::objects::MAX_BODY {
                break;
            }
        }
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": concat!("v1.35.0+skiff-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    })
}

pub fn text(code: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// A JSON body ending in a newline, as upstream's encoder writes it: clients that print a
/// failed request's body (the Python client's `FailToCreateError`) show it that way.
pub fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn aggregated_response(v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, discovery::AGGREGATED_V2)
        .header(header::VARY, "Accept")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default()
}

pub fn status_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, &e.to_status());
    if e.code == 401 {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"kubernetes-master\""),
        );
    }
    resp
}

/// Serves `router` over HTTPS on `listener` until `cancel` fires.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    router: axum::Router,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        conns.spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // A client certificate (verified against the cluster CA in the handshake) names
            // the user of every request on the connection.
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|der| crate::pki::certificate_user(der))
                .map(|(name, groups)| ClientCert(Arc::new((name, groups))));
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Remote);
                    if let Some(cert) = &client_cert {
                        req.extensions_mut().insert(cert.clone());
                    }
                    let router = router.clone();
                    async move {
                        use tower::ServiceExt;
                        let req = req.map(Body::new);
                        router.oneshot(req).await
                    }
                });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(
                hyper_util::rt::TokioIo::new(crate::cork::Corked::new(tls)),
                service,
            );
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = cancel.cancelled() => {}
            }
        });
    }
    conns.shutdown().await;
}

/// An error with its causes, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
