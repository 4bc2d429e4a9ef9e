//! The Kubernetes scheduler: watches unscheduled pods and binds each to a node chosen by the
//! default profile's filter and score plugins, preempting lower-priority pods when none fits.

pub mod cache;
pub mod framework;
pub mod plugins;
pub mod pod_info;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod selector;
