//! Resource amounts (cpu in millicores, bytes, counts) and a pod's effective requests.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::quantity::{self, QuantityError};
use std::collections::BTreeMap;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// What a container without a cpu request counts as when scoring, as upstream.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// What a container without a memory request counts as when scoring (200 MiB), as upstream.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended resources (`example.com/gpu`), hugepages and any other countable resource.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// Reads a resource list; cpu in millicores, the rest in units.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Result<Resource, QuantityError> {
        let mut r = Resource::default();
        for (name, q) in list {
            r.set(name, &q.0)?;
        }
        Ok(r)
    }

    fn set(&mut self, name: &str, q: &str) -> Result<(), QuantityError> {
        match name {
            CPU => self.milli_cpu = quantity::milli_value(q)?,
            MEMORY => self.memory = quantity::value(q)?,
            EPHEMERAL_STORAGE => self.ephemeral_storage = quantity::value(q)?,
            PODS => self.allowed_pod_number = quantity::value(q)?,
            other => {
                self.scalar.insert(other.to_string(), quantity::value(q)?);
            }
        }
        Ok(())
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_add(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_sub(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    /// Raises each amount to at least `o`'s.
    pub fn set_max(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// A container's requests; a resource with a limit and no request requests its limit, as the
/// API server's defaulting makes it.
fn container_requests(c: &Container) -> Result<Resource, QuantityError> {
    let Some(res) = c.resources.as_ref() else {
        return Ok(Resource::default());
    };
    let mut r = Resource::default();
    if let Some(limits) = &res.limits {
        for (name, q) in limits {
            if res
                .requests
                .as_ref()
                .is_none_or(|req| !req.contains_key(name))
            {
                r.set(name, &q.0)?;
            }
        }
    }
    if let Some(requests) = &res.requests {
        for (name, q) in requests {
            r.set(name, &q.0)?;
        }
    }
    Ok(r)
}

fn non_zero(mut r: Resource, explicit: &Resource) -> Resource {
    if explicit.milli_cpu == 0 {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if explicit.memory == 0 {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

/// A pod's effective requests as upstream's `PodRequests` computes them: the larger of the sum
/// of the app containers (plus sidecars) and the largest init container (plus the sidecars
/// started before it), then the pod overhead. With `non_zero`, containers without a cpu or
/// memory request count the scoring defaults.
pub fn pod_requests(spec: &PodSpec, with_non_zero: bool) -> Result<Resource, QuantityError> {
    let get = |c: &Container| -> Result<Resource, QuantityError> {
        let r = container_requests(c)?;
        Ok(if with_non_zero {
            non_zero(r.clone(), &r)
        } else {
            r
        })
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&get(c)?);
    }
    let mut restartable = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let cr = get(c)?;
        let this = if c.restart_policy.as_deref() == Some("Always") {
            restartable.add(&cr);
            restartable.clone()
        } else {
            let mut t = cr;
            t.add(&restartable);
            t
        };
        init_max.set_max(&this);
    }
    reqs.add(&restartable);
    reqs.set_max(&init_max);
    // Pod-level requests, where given, replace the containers' cpu and memory.
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        if let Some(q) = pod_level.get(CPU) {
            reqs.milli_cpu = quantity::milli_value(&q.0)?;
        }
        if let Some(q) = pod_level.get(MEMORY) {
            reqs.memory = quantity::value(&q.0)?;
        }
    }
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resource::from_list(overhead)?);
    }
    Ok(reqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(cpu: &str, mem: &str, restart: Option<&str>) -> Container {
        let mut req = BTreeMap::new();
        if !cpu.is_empty() {
            req.insert(CPU.to_string(), Quantity(cpu.into()));
        }
        if !mem.is_empty() {
            req.insert(MEMORY.to_string(), Quantity(mem.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(req),
                ..ResourceRequirements::default()
            }),
            restart_policy: restart.map(str::to_string),
            ..Container::default()
        }
    }

    #[test]
    fn init_containers_take_the_max() {
        let spec = PodSpec {
            containers: vec![
                container("100m", "100Mi", None),
                container("200m", "", None),
            ],
            init_containers: Some(vec![container("500m", "50Mi", None)]),
            ..PodSpec::default()
        };
        let r = pod_requests(&spec, false).expect("valid");
        assert_eq!(r.milli_cpu, 500);
        assert_eq!(r.memory, 100 << 20);
        let nz = pod_requests(&spec, true).expect("valid");
        assert_eq!(nz.memory, (100 << 20) + DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn sidecars_add_up_and_overhead_is_added() {
        let spec = PodSpec {
            containers: vec![container("100m", "", None)],
            init_containers: Some(vec![
                container("50m", "", Some("Always")),
                container("300m", "", None),
            ]),
            overhead: Some([(CPU.to_string(), Quantity("10m".into()))].into()),
            ..PodSpec::default()
        };
        let r = pod_requests(&spec, false).expect("valid");
        // max(100 + 50, 300 + 50) + 10
        assert_eq!(r.milli_cpu, 360);
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let mut c = container("", "", None);
        c.resources = Some(ResourceRequirements {
            limits: Some([(CPU.to_string(), Quantity("2".into()))].into()),
            ..ResourceRequirements::default()
        });
        let spec = PodSpec {
            containers: vec![c],
            ..PodSpec::default()
        };
        assert_eq!(pod_requests(&spec, false).expect("valid").milli_cpu, 2000);
    }

    #[test]
    fn bad_quantities_are_errors() {
        let spec = PodSpec {
            containers: vec![container("lots", "", None)],
            ..PodSpec::default()
        };
        assert!(pod_requests(&spec, false).is_err());
    }
}
