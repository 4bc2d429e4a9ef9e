//! Label selectors of the typed API objects (`metav1.LabelSelector` and the plain maps of
//! ReplicationControllers and Services), matched against labels.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// A selector ready for matching. `Nothing` matches no object (a null selector).
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Nothing,
    Requirements(Vec<Requirement>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(String);

impl Selector {
    /// From a `metav1.LabelSelector`; None (null) selects nothing; an empty one selects everything.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Selector, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Selector::Nothing);
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError(format!("{other:?} is not a valid operator"))),
            };
            let values = e.values.clone().unwrap_or_default();
            if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                return Err(SelectorError(format!(
                    "values for {} must not be empty",
                    e.key
                )));
            }
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Ok(Selector::Requirements(reqs))
    }

    /// From a plain map (ReplicationController, Service): an empty or missing map selects
    /// nothing, as upstream treats them.
    pub fn from_map(map: Option<&BTreeMap<String, String>>) -> Selector {
        match map {
            Some(m) if !m.is_empty() => Selector::Requirements(
                m.iter()
                    .map(|(k, v)| Requirement {
                        key: k.clone(),
                        op: Op::In,
                        values: vec![v.clone()],
                    })
                    .collect(),
            ),
            _ => Selector::Nothing,
        }
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        match self {
            Selector::Nothing => false,
            Selector::Requirements(reqs) => reqs.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.op {
                    Op::In => v.is_some_and(|v| r.values.contains(v)),
                    Op::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                    Op::Exists => v.is_some(),
                    Op::DoesNotExist => v.is_none(),
                }
            }),
        }
    }

    pub fn is_everything(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["db".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Selector::from_label_selector(Some(&sel)).expect("valid");
        assert!(s.matches(Some(&labels(&[("app", "web")]))));
        assert!(s.matches(Some(&labels(&[("app", "web"), ("tier", "fe")]))));
        assert!(!s.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!s.matches(Some(&labels(&[("app", "web"), ("canary", "1")]))));
        assert!(!s.matches(None));
    }

    #[test]
    fn null_and_empty() {
        assert!(
            !Selector::from_label_selector(None)
                .expect("valid")
                .matches(None)
        );
        let all = Selector::from_label_selector(Some(&LabelSelector::default())).expect("valid");
        assert!(all.matches(None) && all.is_everything());
        assert!(!Selector::from_map(Some(&BTreeMap::new())).matches(None));
        assert!(
            Selector::from_map(Some(&labels(&[("a", "b")])))
                .matches(Some(&labels(&[("a", "b"), ("c", "d")])))
        );
    }

    #[test]
    fn bad_operator_is_an_error() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert!(Selector::from_label_selector(Some(&sel)).is_err());
    }
}
