//! JSON written byte for byte as Go's `encoding/json` writes a decoded object: keys
//! sorted, HTML characters escaped. Annotations that hold JSON (kubectl's last applied
//! configuration) and kubectl's `-o json` are compared as text by clients.

use serde_json::Value;

/// A number as Go prints a decoded JSON number: integers as they are, floats like `%v`.
pub fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
        Some(f) => {
            let s = format!("{f}");
            if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
                format!("{f:e}")
            } else {
                s
            }
        }
        None => n.to_string(),
    }
}

/// Go's `json.MarshalIndent(v, "", "    ")`: keys sorted, HTML characters escaped.
pub fn to_go_json(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v, Some(0));
    out
}

/// Compact JSON with sorted keys, as Go's `json.Marshal` writes a decoded object.
pub fn to_go_json_compact(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v, None);
    out
}

/// Writes `v` at `depth` levels of four-space indentation, or compact without one.
fn write(out: &mut String, v: &Value, depth: Option<usize>) {
    let newline = |out: &mut String, d: Option<usize>| {
        if let Some(d) = d {
            out.push('\n');
            for _ in 0..d {
                out.push_str("    ");
            }
        }
    };
    let inner = depth.map(|d| d + 1);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                json_string(out, k);
                out.push_str(if depth.is_some() { ": " } else { ":" });
                write(out, &m[k.as_str()], inner);
            }
            newline(out, depth);
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write(out, item, inner);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => json_string(out, s),
        Value::Number(n) => out.push_str(&go_number(n)),
        other => out.push_str(&other.to_string()),
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
