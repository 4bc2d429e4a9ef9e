//! `--hollow-capacity cpu=4,memory=16Gi,pods=110`: what each hollow node reports it has.

use std::collections::BTreeMap;

/// Resources a node offers (capacity equals allocatable for hollow nodes), as quantity strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub resources: BTreeMap<String, String>,
    /// The `pods` resource, for admission.
    pub pods: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CapacityError {
    #[error("invalid capacity entry {0:?}: expected NAME=QUANTITY")]
    Entry(String),
    #[error("invalid quantity {1:?} for {0}")]
    Quantity(String, String),
    #[error("the pods capacity must be a whole number from 1 to 253, not {0:?}")]
    Pods(String),
}

const DEFAULTS: [(&str, &str); 4] = [
    ("cpu", "4"),
    ("memory", "16Gi"),
    ("pods", "110"),
    ("ephemeral-storage", "100Gi"),
];

impl std::str::FromStr for Capacity {
    type Err = CapacityError;

    fn from_str(s: &str) -> Result<Capacity, CapacityError> {
        let mut resources: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, value) = entry
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| CapacityError::Entry(entry.to_string()))?;
            if skiff_api::quantity::as_f64(value)
                .filter(|x| *x >= 0.0)
                .is_none()
            {
                return Err(CapacityError::Quantity(name.into(), value.into()));
            }
            resources.insert(name.to_string(), value.to_string());
        }
        let pods_raw = resources.get("pods").cloned().unwrap_or_default();
        // One /24 per node holds the pod IPs, and .1 is the gateway, so no more than 253 pods.
        let pods = pods_raw
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=253).contains(p))
            .ok_or(CapacityError::Pods(pods_raw))?;
        Ok(Capacity { resources, pods })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_defaults() {
        let c: Capacity = "cpu=8".parse().unwrap();
        assert_eq!(c.resources["cpu"], "8");
        assert_eq!(c.resources["memory"], "16Gi");
        assert_eq!(c.resources["ephemeral-storage"], "100Gi");
        assert_eq!(c.pods, 110);
    }

    #[test]
    fn parses_the_documented_form() {
        let c: Capacity = "cpu=4, memory=16Gi,pods=30,nvidia.com/gpu=1"
            .parse()
            .unwrap();
        assert_eq!(c.pods, 30);
        assert_eq!(c.resources["nvidia.com/gpu"], "1");
    }

    #[test]
    fn rejects_bad_entries() {
        assert_eq!(
            "cpu".parse::<Capacity>(),
            Err(CapacityError::Entry("cpu".into()))
        );
        assert!(matches!(
            "memory=lots".parse::<Capacity>(),
            Err(CapacityError::Quantity(..))
        ));
        assert!(matches!(
            "pods=500".parse::<Capacity>(),
            Err(CapacityError::Pods(_))
        ));
        assert!(matches!(
            "pods=1.5".parse::<Capacity>(),
            Err(CapacityError::Pods(_))
        ));
    }
}
