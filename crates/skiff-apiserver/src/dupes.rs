//! Request bodies read as upstream's decoders read them: a field given twice keeps its last
//! value, and is remembered for `fieldValidation` (an error when Strict, a warning when Warn).

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

use crate::openapi::{Step, Trail};

/// A field given twice in a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicate {
    /// In JSON: the field's path (`spec.replicas`).
    Json(String),
    /// In YAML: the line of the repeated key, and the key.
    Yaml { line: u64, key: String },
}

impl Duplicate {
    /// As upstream's strict decoding error lists it.
    pub fn strict_error(&self) -> String {
        match self {
            Duplicate::Json(path) => format!("duplicate field {path:?}"),
            Duplicate::Yaml { .. } => format!(
                "error converting YAML to JSON: yaml: unmarshal errors:\n  {}",
                self.warning()
            ),
        }
    }

    /// As upstream's warning names it (one per field).
    pub fn warning(&self) -> String {
        match self {
            Duplicate::Json(_) => self.strict_error(),
            Duplicate::Yaml { line, key } => format!("line {line}: key {key:?} already set in map"),
        }
    }
}

/// Parses JSON as `serde_json::from_slice::<Value>` does, noting repeated fields.
pub fn json(body: &[u8]) -> serde_json::Result<(Value, Vec<Duplicate>)> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let root = Trail {
        step: Step::Root,
        up: None,
    };
    let value = Seed {
        trail: &root,
        found: &found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, found.into_inner()))
}

/// Parses YAML; a repeated key keeps its last value, and the first one is noted.
pub fn yaml(text: &str) -> Result<(Value, Vec<Duplicate>), serde_saphyr::Error> {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(v) => Ok((v, Vec::new())),
        Err(e) => {
            let Some(dup) = yaml_duplicate(&e) else {
                return Err(e);
            };
            let options = serde_saphyr::options! {
                duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
            };
            let v = serde_saphyr::from_str_with_options::<Value>(text, options)?;
            Ok((v, vec![dup]))
        }
    }
}

fn yaml_duplicate(e: &serde_saphyr::Error) -> Option<Duplicate> {
    let mut e = e;
    loop {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. } => e = error,
            serde_saphyr::Error::DuplicateMappingKey { key, location } => {
                return Some(Duplicate::Yaml {
                    line: location.line(),
                    key: key.clone().unwrap_or_default(),
                });
            }
            _ => return None,
        }
    }
}

struct Seed<'a> {
    trail: &'a Trail<'a>,
    found: &'a RefCell<Vec<Duplicate>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let trail = Trail {
                step: Step::Index(items.len()),
                up: Some(self.trail),
            };
            let seed = Seed {
                trail: &trail,
                found: self.found,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = {
                let trail = Trail {
                    step: Step::Field(&key),
                    up: Some(self.trail),
                };
                map.next_value_seed(Seed {
                    trail: &trail,
                    found: self.found,
                })?
            };
            match out.entry(key) {
                serde_json::map::Entry::Occupied(mut o) => {
                    let path = crate::openapi::dotted(&self.trail.segs(o.key()));
                    self.found.borrow_mut().push(Duplicate::Json(path));
                    o.insert(value);
                }
                serde_json::map::Entry::Vacant(v) => {
                    v.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_keeps_the_last_of_a_repeated_field_and_names_it() {
        let (v, d) = json(
            br#"{"spec": {"replicas": 2, "replicas": 3, "list": [{"a": 1, "a": 2}]}, "k": null}"#,
        )
        .expect("parses");
        assert_eq!(
            v,
            json!({"spec": {"replicas": 3, "list": [{"a": 2}]}, "k": null})
        );
        assert_eq!(
            d,
            vec![
                Duplicate::Json("spec.replicas".into()),
                Duplicate::Json("spec.list[0].a".into())
            ]
        );
        assert_eq!(d[0].strict_error(), r#"duplicate field "spec.replicas""#);
        let (v, d) = json(br#"{"a": [1, -2, 2.5, "x", true, {}]}"#).expect("parses");
        assert_eq!(v, json!({"a": [1, -2, 2.5, "x", true, {}]}));
        assert!(d.is_empty());
        // Errors and their words are serde_json's own.
        let want = serde_json::from_slice::<Value>(b"{\"a\": }").map_err(|e| e.to_string());
        assert_eq!(
            json(b"{\"a\": }").map_err(|e| e.to_string()).map(|_| ()),
            want.map(|_| ())
        );
        assert!(json(b"{\"a\": }").is_err());
        assert!(json(b"{} x").is_err());
    }

    #[test]
    fn yaml_keeps_the_last_of_a_repeated_key_and_names_its_line() {
        let (v, d) = yaml("a: 1\nb:\n  c: x\n  c: z\n").expect("parses");
        assert_eq!(v, json!({"a": 1, "b": {"c": "z"}}));
        assert_eq!(
            d,
            vec![Duplicate::Yaml {
                line: 4,
                key: "c".into()
            }]
        );
        assert_eq!(d[0].warning(), r#"line 4: key "c" already set in map"#);
        assert_eq!(
            d[0].strict_error(),
            "error converting YAML to JSON: yaml: unmarshal errors:\n  line 4: key \"c\" already set in map"
        );
        assert!(yaml("a: [").is_err());
    }
}
