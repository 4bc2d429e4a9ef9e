//! kubectl's JSONPath templates (`{.metadata.name}`, `{range .items[*]}...{end}`, filters).

use serde_json::Value;

use crate::yaml::to_go_json_compact;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// `..name` (or `..*` with `None`).
    Recursive(Option<String>),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Union(Vec<Step>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    op: Option<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// kubectl's "relaxed" form for custom columns and `wait`: `.a.b` or `a.b` or `{.a.b}`.
pub fn relaxed(expr: &str) -> String {
    let e = expr.trim();
    if e.starts_with('{') && e.ends_with('}') {
        return e.to_string();
    }
    let e = e.strip_prefix('.').unwrap_or(e);
    format!("{{.{e}}}")
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut flat = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                None => {
                    flat.push(Flat::Text(rest.to_string()));
                    break;
                }
                Some(i) => {
                    if i > 0 {
                        flat.push(Flat::Text(rest[..i].to_string()));
                    }
                    let end = find_close(&rest[i..])
                        .ok_or_else(|| format!("unclosed action in template {text:?}"))?;
                    let inner = rest[i + 1..i + end].trim();
                    flat.push(parse_action(inner)?);
                    rest = &rest[i + end + 1..];
                }
            }
        }
        let mut it = flat.into_iter();
        let nodes = nest(&mut it, false)?;
        Ok(Template { nodes })
    }

    /// The template's text for `root`; missing fields print nothing.
    pub fn execute(&self, root: &Value) -> String {
        let mut out = String::new();
        run(&self.nodes, root, &mut out);
        out
    }

    /// The values of the template's first expression (for `wait --for=jsonpath`, columns).
    pub fn values(&self, root: &Value) -> Vec<Value> {
        for n in &self.nodes {
            if let Node::Path(steps) = n {
                return eval(steps, root).into_iter().cloned().collect();
            }
        }
        Vec::new()
    }
}

enum Flat {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>),
    End,
}

fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn nest(it: &mut impl Iterator<Item = Flat>, in_range: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some(f) = it.next() {
        match f {
            Flat::Text(t) => nodes.push(Node::Text(t)),
            Flat::Path(p) => nodes.push(Node::Path(p)),
            Flat::Range(p) => {
                let body = nest(it, true)?;
                nodes.push(Node::Range(p, body));
            }
            Flat::End => {
                if in_range {
                    return Ok(nodes);
                }
                return Err("{end} without {range}".into());
            }
        }
    }
    if in_range {
        return Err("{range} without {end}".into());
    }
    Ok(nodes)
}

fn parse_action(inner: &str) -> Result<Flat, String> {
    if inner == "end" {
        return Ok(Flat::End);
    }
    if let Some(p) = inner.strip_prefix("range ") {
        return Ok(Flat::Range(parse_path(p.trim())?));
    }
    if (inner.starts_with('"') && inner.ends_with('"') && inner.len() >= 2)
        || (inner.starts_with('\'') && inner.ends_with('\'') && inner.len() >= 2)
    {
        return Ok(Flat::Text(unescape(&inner[1..inner.len() - 1])));
    }
    Ok(Flat::Path(parse_path(inner)?))
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn parse_path(s: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    if b.first() == Some(&'$') || b.first() == Some(&'@') {
        i = 1;
    }
    let ident_end = |mut j: usize| {
        while j < b.len() && !matches!(b[j], '.' | '[') {
            j += 1;
        }
        j
    };
    while i < b.len() {
        match b[i] {
            '.' if b.get(i + 1) == Some(&'.') => {
                let end = ident_end(i + 2);
                let name: String = b[i + 2..end].iter().collect();
                steps.push(Step::Recursive(
                    (name != "*" && !name.is_empty()).then_some(name),
                ));
                i = end;
            }
            '.' => {
                let end = ident_end(i + 1);
                let name: String = b[i + 1..end].iter().collect();
                if name == "*" {
                    steps.push(Step::Wildcard);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
                i = end;
            }
            '[' => {
                let close =
                    matching_bracket(&b, i).ok_or_else(|| format!("unterminated [ in {s:?}"))?;
                let inner: String = b[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => {
                // A bare first field: `metadata.name`.
                let end = ident_end(i);
                let name: String = b[i..end].iter().collect();
                steps.push(Step::Field(name));
                i = end;
            }
        }
    }
    Ok(steps)
}

fn matching_bracket(b: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in b.iter().enumerate().skip(open) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(f.trim());
    }
    let parts: Vec<&str> = split_top(inner, ',');
    if parts.len() > 1 {
        return Ok(Step::Union(
            parts
                .iter()
                .map(|p| parse_bracket(p.trim()))
                .collect::<Result<_, _>>()?,
        ));
    }
    if (inner.starts_with('\'') && inner.ends_with('\'')
        || inner.starts_with('"') && inner.ends_with('"'))
        && inner.len() >= 2
    {
        return Ok(Step::Field(inner[1..inner.len() - 1].to_string()));
    }
    if let Some((a, b)) = inner.split_once(':') {
        let num = |x: &str| -> Result<Option<i64>, String> {
            let x = x.split(':').next().unwrap_or("").trim();
            if x.is_empty() {
                Ok(None)
            } else {
                x.parse()
                    .map(Some)
                    .map_err(|_| format!("invalid slice {inner:?}"))
            }
        };
        return Ok(Step::Slice(num(a)?, num(b)?));
    }
    inner
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("invalid array index {inner:?}"))
}

fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_filter(f: &str) -> Result<Step, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">", "=~"] {
        if let Some((l, r)) = split_op(f, op) {
            let r = r.trim();
            let lit = if (r.starts_with('"') && r.ends_with('"')
                || r.starts_with('\'') && r.ends_with('\''))
                && r.len() >= 2
            {
                Value::String(r[1..r.len() - 1].to_string())
            } else if let Ok(n) = serde_json::from_str::<Value>(r) {
                n
            } else {
                return Err(format!("invalid filter value {r:?}"));
            };
            return Ok(Step::Filter(Box::new(Filter {
                left: parse_path(l.trim())?,
                op: Some((op.to_string(), lit)),
            })));
        }
    }
    Ok(Step::Filter(Box::new(Filter {
        left: parse_path(f)?,
        op: None,
    })))
}

fn split_op<'a>(f: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let mut quote: Option<char> = None;
    for (i, c) in f.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        } else if f[i..].starts_with(op) {
            return Some((&f[..i], &f[i + op.len()..]));
        }
    }
    None
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            apply(step, v, &mut next);
        }
        cur = next;
    }
    cur
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(x) = v.get(name.as_str()) {
                out.push(x);
            }
        }
        Step::Wildcard => match v {
            Value::Object(m) => out.extend(m.values()),
            Value::Array(a) => out.extend(a.iter()),
            _ => {}
        },
        Step::Recursive(name) => descend(v, name.as_deref(), out),
        Step::Index(i) => {
            if let Value::Array(a) = v {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if idx >= 0
                    && let Some(x) = a.get(idx as usize)
                {
                    out.push(x);
                }
            }
        }
        Step::Slice(start, end) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = norm(start.unwrap_or(0));
                let e = norm(end.unwrap_or(len));
                if s < e {
                    out.extend(a[s as usize..e as usize].iter());
                }
            }
        }
        Step::Union(steps) => {
            for s in steps {
                apply(s, v, out);
            }
        }
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                if filter_matches(f, item) {
                    out.push(item);
                }
            }
        }
    }
}

fn descend<'a>(v: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if name.is_none_or(|n| n == k) {
                    out.push(x);
                }
            }
            for x in m.values() {
                descend(x, name, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                if name.is_none() {
                    out.push(x);
                }
                descend(x, name, out);
            }
        }
        _ => {}
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let found = eval(&f.left, item);
    let Some((op, lit)) = &f.op else {
        return !found.is_empty();
    };
    found.iter().any(|x| compare(x, op, lit))
}

fn compare(x: &Value, op: &str, lit: &Value) -> bool {
    let ord = match (x, lit) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::String(a), b) => Some(a.as_str().cmp(text(b).as_str())),
        (a, b) => (a == b).then_some(std::cmp::Ordering::Equal),
    };
    use std::cmp::Ordering::*;
    match op {
        "==" => ord == Some(Equal),
        "!=" => ord != Some(Equal),
        "<" => ord == Some(Less),
        ">" => ord == Some(Greater),
        "<=" => matches!(ord, Some(Less | Equal)),
        ">=" => matches!(ord, Some(Greater | Equal)),
        _ => false,
    }
}

/// A value as JSONPath prints it: strings raw, everything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => to_go_json_compact(other),
    }
}

fn run(nodes: &[Node], root: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals = eval(steps, root);
                let parts: Vec<String> = vals.iter().map(|v| text(v)).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range(steps, body) => {
                let vals = eval(steps, root);
                let items: Vec<&Value> = if vals.len() == 1
                    && let Value::Array(a) = vals[0]
                {
                    a.iter().collect()
                } else {
                    vals
                };
                for item in items {
                    run(body, item, out);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(v)
    }

    #[test]
    fn templates() {
        let list = json!({"items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
             "status": {"conditions": [{"type": "Ready", "status": "True"}], "replicas": 2}},
            {"metadata": {"name": "b"}, "status": {"replicas": 3}}
        ]});
        assert_eq!(exec("{.items[*].metadata.name}", &list), "a b");
        assert_eq!(exec("{.items[0].status.replicas}", &list), "2");
        assert_eq!(exec("{.items[-1].metadata.name}", &list), "b");
        assert_eq!(
            exec("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &list),
            "a\nb\n"
        );
        assert_eq!(
            exec("{.items[?(@.status.replicas>2)].metadata.name}", &list),
            "b"
        );
        assert_eq!(
            exec(
                "{.items[0].status.conditions[?(@.type==\"Ready\")].status}",
                &list
            ),
            "True"
        );
        assert_eq!(
            exec(
                "{.items[0].metadata.labels['app\\.kubernetes\\.io/name']}",
                &list
            ),
            ""
        );
        assert_eq!(
            exec(
                "{.items[0].metadata.labels['app.kubernetes.io/name']}",
                &list
            ),
            "x"
        );
        assert_eq!(exec("{..replicas}", &list), "2 3");
        assert_eq!(
            exec("name: {.items[1].metadata}", &list),
            "name: {\"name\":\"b\"}"
        );
        assert_eq!(exec("{.nothing}", &list), "");
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{range .a}x").is_err());
        assert_eq!(relaxed(".metadata.name"), "{.metadata.name}");
        assert_eq!(relaxed("metadata.name"), "{.metadata.name}");
    }
}
