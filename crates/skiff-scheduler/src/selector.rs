//! Label and node selectors compiled from their API types, as the filters evaluate them.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One `key op values` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn new(key: &str, op: &str, values: &[String], numeric: bool) -> Result<Requirement, String> {
        let op = match op {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" if numeric => Op::Gt,
            "Lt" if numeric => Op::Lt,
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        match op {
            Op::In | Op::NotIn if values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                ));
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: values set must be empty for exists and does not exist (key {key:?})"
                ));
            }
            Op::Gt | Op::Lt if values.len() != 1 || values[0].parse::<i64>().is_err() => {
                return Err(format!(
                    "values: Invalid value: for 'Gt', 'Lt' operators, exactly one integer value is required (key {key:?})"
                ));
            }
            _ => {}
        }
        Ok(Requirement {
            key: key.to_string(),
            op,
            values: values.to_vec(),
        })
    }

    /// Whether `value` (the label's value, `None` when absent) satisfies the requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }
}

/// A compiled `metav1.LabelSelector`. A missing selector selects nothing; an empty one everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
    pub nothing: bool,
}

impl Selector {
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    pub fn everything() -> Selector {
        Selector::default()
    }

    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Selector, String> {
        let Some(sel) = sel else {
            return Ok(Selector::nothing());
        };
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            requirements.push(Requirement::new(
                &e.key,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
                false,
            )?);
        }
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// One compiled node selector term: its expressions and fields are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    expressions: Vec<Requirement>,
    /// `metadata.name` requirements (the only field upstream supports).
    fields: Vec<Requirement>,
    /// A term that failed to parse matches no node, as upstream's lazy-error selector.
    invalid: bool,
}

impl NodeTerm {
    pub fn parse(term: &NodeSelectorTerm) -> NodeTerm {
        let mut invalid = false;
        let mut parse_all = |reqs: Option<&Vec<NodeSelectorRequirement>>, field: bool| {
            reqs.into_iter()
                .flatten()
                .filter_map(|r| {
                    if field && r.key != "metadata.name" {
                        invalid = true;
                        return None;
                    }
                    match Requirement::new(
                        &r.key,
                        &r.operator,
                        r.values.as_deref().unwrap_or_default(),
                        !field,
                    ) {
                        Ok(req) if field && !matches!(req.op, Op::In | Op::NotIn) => {
                            invalid = true;
                            None
                        }
                        Ok(req) => Some(req),
                        Err(_) => {
                            invalid = true;
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        };
        let expressions = parse_all(term.match_expressions.as_ref(), false);
        let fields = parse_all(term.match_fields.as_ref(), true);
        NodeTerm {
            expressions,
            fields,
            invalid,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        if self.invalid || (self.expressions.is_empty() && self.fields.is_empty()) {
            return false;
        }
        self.expressions.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|r| r.matches_value(Some(node_name)))
    }
}

/// A compiled `v1.NodeSelector`: its terms are ORed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorTerms(pub Vec<NodeTerm>);

impl NodeSelectorTerms {
    pub fn parse(sel: &NodeSelector) -> NodeSelectorTerms {
        NodeSelectorTerms(
            sel.node_selector_terms
                .iter()
                .map(NodeTerm::parse)
                .collect(),
        )
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        self.0.iter().any(|t| t.matches(labels, node_name))
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

    fn nreq(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn label_selector_semantics() {
        assert!(
            !Selector::from_label_selector(None)
                .expect("valid")
                .matches(&labels(&[]))
        );
        let empty = Selector::from_label_selector(Some(&LabelSelector::default())).expect("valid");
        assert!(empty.matches(&labels(&[("a", "b")])));
        let sel = Selector::from_label_selector(Some(&LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        }))
        .expect("valid");
        assert!(sel.matches(&labels(&[("app", "web")])));
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("app", "api")])));
        let bad = Selector::from_label_selector(Some(&LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: Some(vec!["1".into()]),
            }]),
            ..LabelSelector::default()
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn node_selector_operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let term = |reqs: Vec<NodeSelectorRequirement>| {
            NodeTerm::parse(&NodeSelectorTerm {
                match_expressions: Some(reqs),
                match_fields: None,
            })
        };
        assert!(term(vec![nreq("zone", "In", &["a", "b"])]).matches(&l, "n"));
        assert!(!term(vec![nreq("zone", "NotIn", &["a"])]).matches(&l, "n"));
        assert!(term(vec![nreq("zone", "Exists", &[])]).matches(&l, "n"));
        assert!(term(vec![nreq("gpu", "DoesNotExist", &[])]).matches(&l, "n"));
        assert!(term(vec![nreq("cores", "Gt", &["4"])]).matches(&l, "n"));
        assert!(!term(vec![nreq("cores", "Lt", &["4"])]).matches(&l, "n"));
        assert!(!term(vec![nreq("zone", "Gt", &["4"])]).matches(&l, "n"));
        assert!(!term(vec![nreq("cores", "Gt", &["x"])]).matches(&l, "n"));
        // An empty term matches nothing.
        assert!(!term(vec![]).matches(&l, "n"));
        let fields = NodeTerm::parse(&NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![nreq("metadata.name", "In", &["n1"])]),
        });
        assert!(fields.matches(&l, "n1"));
        assert!(!fields.matches(&l, "n2"));
        let bad_field = NodeTerm::parse(&NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![nreq("metadata.uid", "In", &["n1"])]),
        });
        assert!(!bad_field.matches(&l, "n1"));
    }
}
