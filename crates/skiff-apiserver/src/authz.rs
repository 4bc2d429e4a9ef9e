//! Who may do what, and as whom: skiff's authorization policy until RBAC lands, the
//! attributes of a request it decides on, and impersonation (`kubectl --as`).
//!
//! The policy: cluster admins (`system:masters`) and nodes may do everything. Every
//! authenticated user may also do what upstream's default RBAC bootstrap grants the
//! `system:authenticated` group: create the self reviews (`system:basic-user`) and read the
//! discovery and version paths (`system:discovery`, `system:public-info-viewer`). Nothing
//! else: upstream answers "no opinion" for a request no rule allows, so a review reports
//! `allowed: false` and never `denied`.

use http::{HeaderMap, Method};
use serde_json::{Value, json};
use skiff_api::status::ApiError;

use crate::objects::Query;
use crate::request::ResourceRequest;
use crate::server::User;

const MASTERS: &str = "system:masters";
const NODES: &str = "system:nodes";
const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";
const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// Paths service accounts may read (upstream's `system:service-account-issuer-discovery`
/// role, bound to the group of all service accounts).
const ISSUER_DISCOVERY_PATHS: &[&str] = &[
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/",
    "/openid/v1/jwks",
    "/openid/v1/jwks/",
];

/// The self reviews every authenticated user may create (`system:basic-user`).
const SELF_REVIEWS: &[(&str, &str)] = &[
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// Paths every authenticated user may read (`system:discovery`, `system:public-info-viewer`);
/// a trailing `*` matches any rest, as in RBAC's nonResourceURLs.
pub(crate) const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

/// What a request (or a review's spec) asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn in_group(user: &User, group: &str) -> bool {
    user.groups.iter().any(|g| g == group)
}

fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// Whether `user` may do everything (cluster admins and nodes).
pub fn privileged(user: &User) -> bool {
    in_group(user, MASTERS) || in_group(user, NODES)
}

/// Decides whether `user` may do `attrs`.
pub fn authorize(user: &User, attrs: &Attributes) -> Decision {
    for group in [MASTERS, NODES] {
        if in_group(user, group) {
            return Decision {
                allowed: true,
                reason: format!("skiff: the group {group:?} may do everything"),
            };
        }
    }
    if in_group(user, AUTHENTICATED) {
        let allowed = match attrs {
            Attributes::Resource {
                verb,
                group,
                resource,
                subresource,
                ..
            } => {
                verb == "create"
                    && subresource.is_empty()
                    && SELF_REVIEWS
                        .iter()
                        .any(|(g, r)| g == group && r == resource)
            }
            Attributes::NonResource { verb, path } => {
                verb == "get"
                    && (DISCOVERY_PATHS.iter().any(|p| path_matches(p, path))
                        || (in_group(user, SERVICE_ACCOUNTS)
                            && ISSUER_DISCOVERY_PATHS.contains(&path.as_str())))
            }
        };
        if allowed {
            return Decision {
                allowed: true,
                reason: format!(
                    "skiff: the default policy lets the group {AUTHENTICATED:?} do this"
                ),
            };
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

/// What `user` may do, as a SelfSubjectRulesReview's status lists it.
pub fn rules_for(user: &User) -> (Vec<Value>, Vec<Value>) {
    if in_group(user, MASTERS) || in_group(user, NODES) {
        return (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        );
    }
    if !in_group(user, AUTHENTICATED) {
        return (Vec::new(), Vec::new());
    }
    let resource_rules = vec![
        json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
               "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
        json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
               "resources": ["selfsubjectreviews"]}),
    ];
    let mut non_resource_rules =
        vec![json!({"verbs": ["get"], "nonResourceURLs": DISCOVERY_PATHS})];
    if in_group(user, SERVICE_ACCOUNTS) {
        non_resource_rules
            .push(json!({"verbs": ["get"], "nonResourceURLs": ISSUER_DISCOVERY_PATHS}));
    }
    (resource_rules, non_resource_rules)
}

/// The attributes of an API request on a resource, with upstream's verbs: a GET is `get`,
/// `list` or `watch`, a DELETE of a collection `deletecollection`.
pub fn resource_attributes(r: &ResourceRequest, method: &Method, query: &Query) -> Attributes {
    let named = r.name.is_some();
    let watch = r.watch_path || (query.get("watch").is_some() && query.flag("watch"));
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    };
    let verb = if verb.is_empty() {
        method.as_str().to_ascii_lowercase()
    } else {
        verb.to_string()
    };
    Attributes::Resource {
        verb,
        group: r.info.group.to_string(),
        resource: r.info.plural.to_string(),
        subresource: r.subresource.clone().unwrap_or_default(),
        namespace: r.namespace.clone().unwrap_or_default(),
        name: r.name.clone().unwrap_or_default(),
    }
}

/// The attributes of a request on any other path: the verb is the method, lower case.
pub fn path_attributes(path: &str, method: &Method) -> Attributes {
    Attributes::NonResource {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
    }
}

/// Upstream's 403 for a request the policy does not allow.
pub fn forbidden(user: &User, attrs: &Attributes) -> ApiError {
    match attrs {
        Attributes::NonResource { verb, path } => ApiError::forbidden(format!(
            "forbidden: User {:?} cannot {verb} path {path:?}",
            user.name
        )),
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let full = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {namespace:?}")
            };
            let qualified = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            let subject = if name.is_empty() {
                qualified
            } else {
                format!("{qualified} {name:?}")
            };
            let mut e = ApiError::forbidden(format!(
                "{subject} is forbidden: User {:?} cannot {verb} resource {full:?} in API group {group:?} {scope}",
                user.name
            ));
            let mut details = json!({"kind": resource});
            if !name.is_empty() {
                details["name"] = json!(name);
            }
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            e.details = Some(Box::new(details));
            e
        }
    }
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::bad_request(format!("the {name} header is not text")))
        })
        .collect()
}

/// The user a request acts as: `requester`, or the user its `Impersonate-*` headers name if
/// the requester may impersonate them (upstream's impersonation filter).
/// The `Impersonate-*` headers of a request, apart from it.
pub fn impersonation_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("impersonate-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn impersonate(headers: &HeaderMap, requester: User) -> Result<User, ApiError> {
    let users = header_values(headers, "impersonate-user")?;
    let groups = header_values(headers, "impersonate-group")?;
    let uids = header_values(headers, "impersonate-uid")?;
    let extra_keys: Vec<&str> = headers
        .keys()
        .filter_map(|k| k.as_str().strip_prefix("impersonate-extra-"))
        .collect();
    if users.is_empty() && groups.is_empty() && uids.is_empty() && extra_keys.is_empty() {
        return Ok(requester);
    }
    let Some(&username) = users.first().filter(|u| !u.is_empty()) else {
        // Upstream answers 500 here; a client's mistake is a 400.
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extra fields without impersonating a user",
        ));
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one Impersonate-User and one Impersonate-Uid header may be sent",
        ));
    }
    let mut checks = Vec::new();
    let service_account = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, name)) => checks.push(("", "serviceaccounts", ns, name)),
        None => checks.push(("", "users", "", username)),
    }
    for g in &groups {
        checks.push(("", "groups", "", g));
    }
    for u in &uids {
        checks.push(("authentication.k8s.io", "uids", "", u));
    }
    for (group, resource, namespace, name) in checks {
        let attrs = Attributes::Resource {
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if !authorize(&requester, &attrs).allowed {
            return Err(forbidden(&requester, &attrs));
        }
    }
    let mut impersonated: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    if let Some((ns, _)) = service_account
        && groups.is_empty()
    {
        impersonated = vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    let implicit = if username == ANONYMOUS {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    if !impersonated.iter().any(|g| g == implicit) {
        impersonated.push(implicit.to_string());
    }
    Ok(User {
        name: username.to_string(),
        groups: impersonated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn resource(verb: &str, group: &str, resource: &str, ns: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: ns.into(),
            name: String::new(),
        }
    }

    #[test]
    fn admins_and_nodes_may_do_everything_others_only_the_basics() {
        let admin = user("system:admin", &[MASTERS, AUTHENTICATED]);
        let node = user("system:node", &[NODES, AUTHENTICATED]);
        let alice = user("alice", &[AUTHENTICATED]);
        let pods = resource("list", "", "pods", "default");
        assert!(authorize(&admin, &pods).allowed);
        assert!(authorize(&node, &pods).allowed);
        let no = authorize(&alice, &pods);
        assert!(!no.allowed);
        assert_eq!(no.reason, "");
        let ssar = resource(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
        );
        assert!(authorize(&alice, &ssar).allowed);
        let sar = resource("create", "authorization.k8s.io", "subjectaccessreviews", "");
        assert!(!authorize(&alice, &sar).allowed);
        let get = |path: &str| Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        assert!(authorize(&alice, &get("/apis/apps/v1")).allowed);
        assert!(authorize(&alice, &get("/version")).allowed);
        assert!(!authorize(&alice, &get("/metrics")).allowed);
        assert!(!authorize(&user("x", &[]), &get("/api")).allowed);
    }

    #[test]
    fn forbidden_reads_as_upstreams() {
        let alice = user("alice", &[AUTHENTICATED]);
        let e = forbidden(&alice, &resource("list", "", "pods", "default"));
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let mut attrs = resource("get", "apps", "deployments", "");
        if let Attributes::Resource {
            name, subresource, ..
        } = &mut attrs
        {
            *name = "web".into();
            *subresource = "scale".into();
        }
        assert_eq!(
            forbidden(&alice, &attrs).message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
        let path = path_attributes("/metrics", &Method::GET);
        assert_eq!(
            forbidden(&alice, &path).message,
            "forbidden: User \"alice\" cannot get path \"/metrics\""
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    fn acting_as(pairs: &[(&'static str, &'static str)], requester: &User) -> User {
        impersonate(&headers(pairs), requester.clone()).expect("may impersonate")
    }

    #[test]
    fn impersonation_as_upstream() {
        let admin = user("system:admin", &[MASTERS, AUTHENTICATED]);
        assert_eq!(acting_as(&[], &admin), admin);
        let alice = [("impersonate-user", "alice")];
        assert_eq!(acting_as(&alice, &admin), user("alice", &[AUTHENTICATED]));
        let with_groups = [
            ("impersonate-user", "alice"),
            ("impersonate-group", "devs"),
            ("impersonate-group", MASTERS),
        ];
        assert_eq!(
            acting_as(&with_groups, &admin),
            user("alice", &["devs", MASTERS, AUTHENTICATED])
        );
        let sa = [(
            "impersonate-user",
            "system:serviceaccount:kube-system:builder",
        )];
        assert_eq!(
            acting_as(&sa, &admin).groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                AUTHENTICATED
            ]
        );
        let anon = [("impersonate-user", ANONYMOUS)];
        assert_eq!(acting_as(&anon, &admin).groups, vec![UNAUTHENTICATED]);
        // A user who may not impersonate gets upstream's 403; groups alone are a 400.
        let plain = user("alice", &[AUTHENTICATED]);
        let e = impersonate(&headers(&with_groups), plain).expect_err("not allowed");
        assert_eq!(e.code, 403);
        assert!(
            e.message
                .contains("cannot impersonate resource \"users\" in API group \"\""),
            "{}",
            e.message
        );
        let groups_only = headers(&[("impersonate-group", "devs")]);
        let e = impersonate(&groups_only, admin).expect_err("no user");
        assert_eq!(e.code, 400);
    }
}
