//! YAML and JSON text exactly as kubectl prints them: sigs.k8s.io/yaml (go-yaml v2: keys in its
//! natural order, lists not indented under their key, quoting only where a plain scalar would
//! read back as something else, folding at 80 columns) and Go's `json.MarshalIndent`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use skiff_api::gojson::go_number;
pub use skiff_api::gojson::{to_go_json, to_go_json_compact};

const BEST_WIDTH: usize = 80;

/// One YAML document for `v`, ending in a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
    };
    match v {
        Value::Object(m) if !m.is_empty() => e.map(m, 0),
        Value::Array(a) if !a.is_empty() => e.seq(a, 0),
        other => {
            e.scalar(other, 0, false);
            e.newline();
        }
    }
    e.out
}

struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn push(&mut self, s: &str) {
        for c in s.chars() {
            if c == '\n' {
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn indent_to(&mut self, indent: usize) {
        while self.column < indent {
            self.push(" ");
        }
    }

    /// A block mapping whose keys start at `indent`; the first key is written at the current
    /// position when it already is there (after `- `).
    fn map(&mut self, m: &Map<String, Value>, indent: usize) {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort_by(|a, b| natural_cmp(a, b));
        for k in keys {
            let v = &m[k];
            self.indent_to(indent);
            self.scalar_str(k, indent, true);
            self.push(":");
            match v {
                Value::Object(inner) if !inner.is_empty() => {
                    self.newline();
                    self.map(inner, indent + 2);
                }
                Value::Array(items) if !items.is_empty() => {
                    self.newline();
                    self.seq(items, indent);
                }
                other => {
                    self.push(" ");
                    self.scalar(other, indent + 2, false);
                    self.newline();
                }
            }
        }
    }

    fn seq(&mut self, items: &[Value], indent: usize) {
        for v in items {
            self.indent_to(indent);
            self.push("- ");
            match v {
                Value::Object(inner) if !inner.is_empty() => self.map(inner, indent + 2),
                Value::Array(inner) if !inner.is_empty() => self.seq(inner, indent + 2),
                other => {
                    self.scalar(other, indent + 2, false);
                    self.newline();
                }
            }
        }
    }

    /// A scalar (or an empty collection); `indent` is where folded lines continue.
    fn scalar(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Null => self.push("null"),
            Value::Bool(b) => self.push(if *b { "true" } else { "false" }),
            Value::Number(n) => self.push(&go_number(n)),
            Value::String(s) => self.scalar_str(s, indent, key),
            Value::Array(_) => self.push("[]"),
            Value::Object(_) => self.push("{}"),
        }
    }

    fn scalar_str(&mut self, s: &str, indent: usize, key: bool) {
        let a = analyze(s);
        let style = if s.contains('\n') {
            if key || !a.block_allowed {
                Style::Double
            } else {
                Style::Literal
            }
        } else if !resolves_to_string(s) {
            Style::Double
        } else if a.block_plain_allowed {
            Style::Plain
        } else if a.single_quoted_allowed {
            Style::Single
        } else {
            Style::Double
        };
        let style = if key && a.multiline {
            Style::Double
        } else {
            style
        };
        let breaks = !key;
        match style {
            Style::Plain => self.plain(s, indent, breaks),
            Style::Single => self.single(s, indent, breaks),
            Style::Double => self.double(s, indent, breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn write_indent(&mut self, indent: usize) {
        self.newline();
        self.indent_to(indent);
    }

    fn plain(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.write_indent(indent);
                } else {
                    self.push(" ");
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
    }

    fn push_char(&mut self, c: char) {
        let mut b = [0u8; 4];
        self.push(c.encode_utf8(&mut b));
    }

    fn single(&mut self, s: &str, indent: usize, breaks: bool) {
        self.push("'");
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < chars.len() - 1
                    && !next_space
                {
                    self.write_indent(indent);
                } else {
                    self.push(" ");
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.push("'");
                }
                self.push_char(c);
                spaces = false;
            }
        }
        self.push("'");
    }

    fn double(&mut self, s: &str, indent: usize, breaks: bool) {
        self.push("\"");
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || c == '"' || c == '\\' || is_break(c) {
                let esc = match c {
                    '\0' => "\\0".to_string(),
                    '\u{7}' => "\\a".to_string(),
                    '\u{8}' => "\\b".to_string(),
                    '\t' => "\\t".to_string(),
                    '\n' => "\\n".to_string(),
                    '\u{b}' => "\\v".to_string(),
                    '\u{c}' => "\\f".to_string(),
                    '\r' => "\\r".to_string(),
                    '\u{1b}' => "\\e".to_string(),
                    '"' => "\\\"".to_string(),
                    '\\' => "\\\\".to_string(),
                    '\u{85}' => "\\N".to_string(),
                    '\u{a0}' => "\\_".to_string(),
                    '\u{2028}' => "\\L".to_string(),
                    '\u{2029}' => "\\P".to_string(),
                    c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                    c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                    c => format!("\\U{:08X}", c as u32),
                };
                self.push(&esc);
                spaces = false;
            } else if c == ' ' {
                if breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i < chars.len() - 1 {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.push("\\");
                    }
                } else {
                    self.push(" ");
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
        self.push("\"");
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.push("|");
        if s.starts_with(' ') || s.starts_with('\n') {
            self.push("2");
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        match trailing {
            0 => self.push("-"),
            1 if s.len() > 1 => {}
            _ => self.push("+"),
        }
        self.newline();
        let body = s.strip_suffix('\n').unwrap_or(s);
        for (i, line) in body.split('\n').enumerate() {
            if i > 0 {
                self.newline();
            }
            if !line.is_empty() {
                self.indent_to(indent);
                self.push(line);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0a
        || (0x20..=0x7e).contains(&u)
        || u == 0x85
        || (0xa0..=0xd7ff).contains(&u)
        || ((0xe000..=0xfffd).contains(&u) && u != 0xfeff)
        || (0x10000..=0x10ffff).contains(&u)
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

/// go-yaml's `yaml_emitter_analyze_scalar`, block context.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) =
        (false, false, false, false);
    let mut line_breaks = false;
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = is_blankz(chars.get(i + 1).copied());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == chars.len() - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i == chars.len() - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(Some(c));
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// Whether go-yaml v2 would read `s` back as a string when written plain (its `resolve`).
fn resolves_to_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N",
        "no", "No", "NO", "off", "Off", "OFF", "true", "True", "TRUE", "false", "False", "FALSE",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return false;
    }
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_digit() || matches!(first, '+' | '-' | '.')) {
        return true;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if go_parse_int(&plain) || plain.parse::<f64>().is_ok() && !plain.contains(['x', 'X']) {
        return false;
    }
    if is_timestamp(s) || is_base60_float(s) {
        return false;
    }
    true
}

fn go_parse_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (o, 8)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    !digits.is_empty() && u128::from_str_radix(digits, radix).is_ok()
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        (n >= min && n <= max).then_some(from + n)
    };
    let Some(i) = digits(0, 4, 4) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    let Some(i) = digits(i + 1, 1, 2) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    let Some(i) = digits(i + 1, 1, 2) else {
        return false;
    };
    if i == b.len() {
        return true;
    }
    matches!(b[i], b'T' | b't' | b' ')
        && digits(i + 1, 1, 2).is_some_and(|j| b.get(j) == Some(&b':'))
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, _frac) = match body.split_once('.') {
        Some((m, f)) if f.chars().all(|c| c.is_ascii_digit() || c == '_') => (m, f),
        Some(_) => return false,
        None => (body, ""),
    };
    let mut parts = main.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// go-yaml v2's key order: letters after other characters, runs of digits by value.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_layout() {
        let v = json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "resourceVersion": "12", "creationTimestamp": "2024-01-02T03:04:05Z",
                "annotations": {"a": "{\"x\":1}\n", "b": "*", "c": "", "d": "yes", "e": "1.5", "f": "key: v"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.14", "ports": [{"containerPort": 80}], "args": ["a", "b"]}
            ]}}, "x": {}, "z": []}
        });
        let expected = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    a: |
      {\"x\":1}
    b: '*'
    c: \"\"
    d: \"yes\"
    e: \"1.5\"
    f: 'key: v'
  creationTimestamp: \"2024-01-02T03:04:05Z\"
  name: web
  resourceVersion: \"12\"
spec:
  replicas: 3
  template:
    spec:
      containers:
      - args:
        - a
        - b
        image: nginx:1.14
        name: nginx
        ports:
        - containerPort: 80
  x: {}
  z: []
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn folding_and_literals() {
        let long = "word ".repeat(30).trim_end().to_string();
        let out = to_yaml(&json!({"k": long}));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1, "{out}");
        assert!(lines[1].starts_with("  word"), "{out}");
        assert_eq!(to_yaml(&json!({"k": "a\nb"})), "k: |-\n  a\n  b\n");
        assert_eq!(to_yaml(&json!({"k": "a\n\nb\n"})), "k: |\n  a\n\n  b\n");
        assert_eq!(to_yaml(&json!({"k": "a \nb"})), "k: \"a \\nb\"\n");
        assert_eq!(to_yaml(&json!([["a"], "b"])), "- - a\n- b\n");
    }

    #[test]
    fn resolve_rules() {
        for s in [
            "123",
            "0x1F",
            "1e3",
            "true",
            "No",
            "~",
            "2024-01-01",
            "1:30",
            "-1",
            ".5",
        ] {
            assert!(!resolves_to_string(s), "{s}");
        }
        for s in [
            "nginx:1.14",
            "v1",
            "1.2.3",
            "apps/v1",
            "-x",
            "0xZZ",
            "10.0.0.1",
        ] {
            assert!(resolves_to_string(s), "{s}");
        }
    }

    #[test]
    fn key_order() {
        let mut k = vec!["b", "a10", "a9", "_x", "Z", "a"];
        k.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(k, ["_x", "Z", "a", "a9", "a10", "b"]);
    }

    #[test]
    fn go_json() {
        let v = json!({"b": [1, {}], "a": "<x>", "c": []});
        assert_eq!(
            to_go_json(&v),
            "{\n    \"a\": \"\\u003cx\\u003e\",\n    \"b\": [\n        1,\n        {}\n    ],\n    \"c\": []\n}"
        );
        assert_eq!(
            to_go_json_compact(&json!({"b": 1, "a": {}})),
            "{\"a\":{},\"b\":1}"
        );
    }
}
