//! The HTTPS Kubernetes API server: REST handlers, the watch cache, discovery, OpenAPI and the
//! authn → authz → admission chain in front of the store.

pub mod admission;
pub mod alloc;
pub mod authz;
mod bootstrap;
pub mod cache;
pub mod components;
mod cork;
pub mod crd;
mod csr;
pub mod discovery;
pub mod dupes;
pub mod follow;
mod health;
pub mod metrics_api;
pub mod namespaces;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod pods;
mod rawjson;
pub mod rbac_defaults;
pub mod request;
pub mod rest;
pub mod reviews;
pub mod server;
pub mod structural;
pub mod table;
pub mod tokens;
pub mod ttl;
pub mod watch;

pub use server::{ApiServer, Config, serve_https};
