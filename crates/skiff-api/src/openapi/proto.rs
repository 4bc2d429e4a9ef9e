//! Encodes a Swagger 2.0 JSON document as gnostic's `openapi.v2.Document` protobuf
//! (google/gnostic-models `openapiv2/OpenAPIv2.proto`), which kubectl 1.20 fetches from
//! `/openapi/v2` to validate manifests.
//!
//! Only the messages a Kubernetes document uses are written. Proto3 leaves out fields that
//! hold their default value, so empty strings, `false` and zero are skipped.

use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
pub(super) struct Encoder {
    buf: Vec<u8>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

impl Encoder {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint((field << 3) | wire);
    }

    fn bytes(&mut self, field: u64, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A string field, skipped when empty.
    fn string(&mut self, field: u64, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A bool field, skipped when false.
    fn bool(&mut self, field: u64, b: bool) {
        if b {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    /// An int64 field, skipped when zero.
    fn int64(&mut self, field: u64, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    /// A double field, skipped when zero.
    fn double(&mut self, field: u64, v: f64) {
        if v != 0.0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A nested message, written even when empty (its presence is meaningful).
    fn message(&mut self, field: u64, f: impl FnOnce(&mut Encoder)) {
        let mut inner = Encoder::default();
        f(&mut inner);
        self.bytes(field, &inner.buf);
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn bool_of(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn int_of(m: &Map<String, Value>, key: &str) -> i64 {
    m.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn double_of(m: &Map<String, Value>, key: &str) -> f64 {
    m.get(key).and_then(Value::as_f64).unwrap_or_default()
}

fn strings_of<'a>(m: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a str> {
    m.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `Any { yaml }`. JSON is YAML, and gnostic's readers parse the text with a YAML parser.
fn any(e: &mut Encoder, v: &Value) {
    e.string(2, &v.to_string());
}

/// `repeated NamedAny vendor_extension`: every `x-` key of `m`.
fn vendor_extensions(e: &mut Encoder, field: u64, m: &Map<String, Value>) {
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        e.message(field, |na| {
            na.string(1, k);
            na.message(2, |a| any(a, v));
        });
    }
}

/// `openapi.v2.Document`.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    let mut e = Encoder::default();
    let Some(m) = doc.as_object() else {
        return e.finish();
    };
    e.string(1, str_of(m, "swagger"));
    if let Some(info) = m.get("info").and_then(Value::as_object) {
        e.message(2, |i| {
            i.string(1, str_of(info, "title"));
            i.string(2, str_of(info, "version"));
            i.string(3, str_of(info, "description"));
            vendor_extensions(i, 7, info);
        });
    }
    e.string(3, str_of(m, "host"));
    e.string(4, str_of(m, "basePath"));
    for (field, key) in [(5, "schemes"), (6, "consumes"), (7, "produces")] {
        for s in strings_of(m, key) {
            e.string(field, s);
        }
    }
    if let Some(paths) = m.get("paths").and_then(Value::as_object) {
        e.message(8, |p| {
            vendor_extensions(p, 1, paths);
            for (name, item) in paths.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let Some(item) = item.as_object() else {
                    continue;
                };
                p.message(2, |np| {
                    np.string(1, name);
                    np.message(2, |pi| path_item(pi, item));
                });
            }
        });
    }
    if let Some(defs) = m.get("definitions").and_then(Value::as_object) {
        e.message(9, |d| {
            for (name, schema_value) in defs {
                d.message(1, |ns| {
                    ns.string(1, name);
                    ns.message(2, |s| schema(s, schema_value));
                });
            }
        });
    }
    for req in m
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(req) = req.as_object() else {
            continue;
        };
        e.message(12, |sr| {
            for (name, scopes) in req {
                sr.message(1, |nsa| {
                    nsa.string(1, name);
                    nsa.message(2, |sa| {
                        for s in scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                        {
                            sa.string(1, s);
                        }
                    });
                });
            }
        });
    }
    if let Some(defs) = m.get("securityDefinitions").and_then(Value::as_object) {
        e.message(13, |sd| {
            for (name, def) in defs {
                let Some(def) = def.as_object() else {
                    continue;
                };
                sd.message(1, |n| {
                    n.string(1, name);
                    n.message(2, |item| match str_of(def, "type") {
                        "apiKey" => item.message(2, |k| {
                            k.string(1, "apiKey");
                            k.string(2, str_of(def, "name"));
                            k.string(3, str_of(def, "in"));
                            k.string(4, str_of(def, "description"));
                            vendor_extensions(k, 5, def);
                        }),
                        _ => item.message(1, |b| {
                            b.string(1, "basic");
                            b.string(2, str_of(def, "description"));
                            vendor_extensions(b, 3, def);
                        }),
                    });
                });
            }
        });
    }
    vendor_extensions(&mut e, 16, m);
    e.finish()
}

/// `openapi.v2.Schema`.
fn schema(e: &mut Encoder, v: &Value) {
    let Some(m) = v.as_object() else {
        return;
    };
    e.string(1, str_of(m, "$ref"));
    e.string(2, str_of(m, "format"));
    e.string(3, str_of(m, "title"));
    e.string(4, str_of(m, "description"));
    if let Some(d) = m.get("default") {
        e.message(5, |a| any(a, d));
    }
    e.double(6, double_of(m, "multipleOf"));
    e.double(7, double_of(m, "maximum"));
    e.bool(8, bool_of(m, "exclusiveMaximum"));
    e.double(9, double_of(m, "minimum"));
    e.bool(10, bool_of(m, "exclusiveMinimum"));
    e.int64(11, int_of(m, "maxLength"));
    e.int64(12, int_of(m, "minLength"));
    e.string(13, str_of(m, "pattern"));
    e.int64(14, int_of(m, "maxItems"));
    e.int64(15, int_of(m, "minItems"));
    e.bool(16, bool_of(m, "uniqueItems"));
    e.int64(17, int_of(m, "maxProperties"));
    e.int64(18, int_of(m, "minProperties"));
    for r in strings_of(m, "required") {
        e.string(19, r);
    }
    for v in m
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        e.message(20, |a| any(a, v));
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(b)) => e.message(21, |ap| {
            ap.key(2, VARINT);
            ap.varint(u64::from(*b));
        }),
        Some(sub @ Value::Object(_)) => e.message(21, |ap| ap.message(1, |s| schema(s, sub))),
        _ => {}
    }
    match m.get("type") {
        Some(Value::String(t)) => e.message(22, |ti| ti.string(1, t)),
        Some(Value::Array(ts)) => e.message(22, |ti| {
            for t in ts.iter().filter_map(Value::as_str) {
                ti.string(1, t);
            }
        }),
        _ => {}
    }
    match m.get("items") {
        Some(sub @ Value::Object(_)) => e.message(23, |ii| ii.message(1, |s| schema(s, sub))),
        Some(Value::Array(subs)) => e.message(23, |ii| {
            for sub in subs {
                ii.message(1, |s| schema(s, sub));
            }
        }),
        _ => {}
    }
    for sub in m
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        e.message(24, |s| schema(s, sub));
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        e.message(25, |p| {
            for (name, sub) in props {
                p.message(1, |ns| {
                    ns.string(1, name);
                    ns.message(2, |s| schema(s, sub));
                });
            }
        });
    }
    e.string(26, str_of(m, "discriminator"));
    e.bool(27, bool_of(m, "readOnly"));
    if let Some(x) = m.get("example") {
        e.message(30, |a| any(a, x));
    }
    vendor_extensions(e, 31, m);
}

/// `openapi.v2.PathItem`.
fn path_item(e: &mut Encoder, m: &Map<String, Value>) {
    e.string(1, str_of(m, "$ref"));
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = m.get(method).and_then(Value::as_object) {
            e.message(field, |o| operation(o, op));
        }
    }
    for p in m
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        e.message(9, |pi| parameters_item(pi, p));
    }
    vendor_extensions(e, 10, m);
}

/// `openapi.v2.Operation`.
fn operation(e: &mut Encoder, m: &Map<String, Value>) {
    for t in strings_of(m, "tags") {
        e.string(1, t);
    }
    e.string(2, str_of(m, "summary"));
    e.string(3, str_of(m, "description"));
    e.string(5, str_of(m, "operationId"));
    for s in strings_of(m, "produces") {
        e.string(6, s);
    }
    for s in strings_of(m, "consumes") {
        e.string(7, s);
    }
    for p in m
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        e.message(8, |pi| parameters_item(pi, p));
    }
    if let Some(responses) = m.get("responses").and_then(Value::as_object) {
        e.message(9, |rs| {
            for (code, resp) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let Some(resp) = resp.as_object() else {
                    continue;
                };
                rs.message(1, |nrv| {
                    nrv.string(1, code);
                    nrv.message(2, |rv| {
                        if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
                            rv.message(2, |jr| jr.string(1, r));
                        } else {
                            rv.message(1, |r| response(r, resp));
                        }
                    });
                });
            }
            vendor_extensions(rs, 2, responses);
        });
    }
    for s in strings_of(m, "schemes") {
        e.string(10, s);
    }
    e.bool(11, bool_of(m, "deprecated"));
    vendor_extensions(e, 13, m);
}

/// `openapi.v2.Response`.
fn response(e: &mut Encoder, m: &Map<String, Value>) {
    e.string(1, str_of(m, "description"));
    if let Some(s) = m.get("schema") {
        e.message(2, |si| si.message(1, |sc| schema(sc, s)));
    }
    vendor_extensions(e, 5, m);
}

/// `openapi.v2.ParametersItem`: a parameter, or a `$ref` to one.
fn parameters_item(e: &mut Encoder, v: &Value) {
    let Some(m) = v.as_object() else {
        return;
    };
    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
        e.message(2, |jr| {
            jr.string(1, r);
            jr.string(2, str_of(m, "description"));
        });
        return;
    }
    e.message(1, |p| match str_of(m, "in") {
        "body" => p.message(1, |b| {
            b.string(1, str_of(m, "description"));
            b.string(2, str_of(m, "name"));
            b.string(3, "body");
            b.bool(4, bool_of(m, "required"));
            if let Some(s) = m.get("schema") {
                b.message(5, |sc| schema(sc, s));
            }
            vendor_extensions(b, 6, m);
        }),
        location => p.message(2, |nb| {
            // NonBodyParameter's oneof: header 1, formData 2, query 3, path 4. The
            // sub-schemas number their common fields differently.
            let (field, type_field) = match location {
                "header" => (1, 5),
                "formData" => (2, 6),
                "path" => (4, 5),
                _ => (3, 6),
            };
            nb.message(field, |q| {
                q.bool(1, bool_of(m, "required"));
                q.string(2, location);
                q.string(3, str_of(m, "description"));
                q.string(4, str_of(m, "name"));
                if matches!(location, "query" | "formData") {
                    q.bool(5, bool_of(m, "allowEmptyValue"));
                }
                q.string(type_field, str_of(m, "type"));
                q.string(type_field + 1, str_of(m, "format"));
                // uniqueItems: field 20 in query and formData, 19 in header and path.
                let unique = if matches!(location, "query" | "formData") {
                    20
                } else {
                    19
                };
                q.bool(unique, bool_of(m, "uniqueItems"));
                let ext = if matches!(location, "query" | "formData") {
                    23
                } else {
                    22
                };
                vendor_extensions(q, ext, m);
            });
        }),
    });
}

#[cfg(test)]
pub(super) mod decode {
    //! A minimal protobuf reader for the tests: enough to walk the encoded document.

    #[derive(Debug, Clone)]
    pub enum Field<'a> {
        Varint,
        Fixed64,
        Bytes(&'a [u8]),
    }

    fn varint(buf: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = buf[*pos];
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    /// Every (field number, value) of one message, in order.
    pub fn fields(buf: &[u8]) -> Vec<(u64, Field<'_>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let key = varint(buf, &mut pos);
            let field = key >> 3;
            let value = match key & 7 {
                0 => {
                    varint(buf, &mut pos);
                    Field::Varint
                }
                1 => {
                    pos += 8;
                    Field::Fixed64
                }
                2 => {
                    let len = varint(buf, &mut pos) as usize;
                    let b = &buf[pos..pos + len];
                    pos += len;
                    Field::Bytes(b)
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((field, value));
        }
        out
    }

    /// Every length-delimited value of field `n`.
    pub fn all(buf: &[u8], n: u64) -> Vec<&[u8]> {
        fields(buf)
            .into_iter()
            .filter_map(|(f, v)| match v {
                Field::Bytes(b) if f == n => Some(b),
                _ => None,
            })
            .collect()
    }

    /// The first length-delimited value of field `n`.
    pub fn one(buf: &[u8], n: u64) -> &[u8] {
        all(buf, n).first().copied().unwrap_or_default()
    }

    /// Field `n` as a string.
    pub fn string(buf: &[u8], n: u64) -> String {
        String::from_utf8(one(buf, n).to_vec()).expect("utf-8")
    }

    /// The value of the `Named*` entry called `name` among the messages of field `n`.
    pub fn named<'a>(buf: &'a [u8], n: u64, name: &str) -> Option<&'a [u8]> {
        all(buf, n)
            .into_iter()
            .find(|entry| string(entry, 1) == name)
            .map(|entry| one(entry, 2))
    }
}
