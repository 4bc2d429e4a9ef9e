//! A corpus of malformed and hostile requests: every one gets a 4xx `Status`, never a 5xx, and the
//! server keeps serving.

use skiff_testkit::{TestServer, run_with_timeout};
use std::process::Command;
use std::time::Duration;

struct Case {
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    expect: u16,
}

fn case(
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: &str,
    expect: u16,
) -> Case {
    Case {
        method,
        path,
        content_type,
        body: body.as_bytes().to_vec(),
        expect,
    }
}

fn send(s: &TestServer, c: &Case) -> (u16, String) {
    let body_file = s.dir.path().join("body");
    std::fs::write(&body_file, &c.body).expect("write body");
    let out = run_with_timeout(
        Command::new("curl").args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "20",
            "--cacert",
            &s.dir.path().join("tls/ca.crt").display().to_string(),
            "-H",
            &format!("Authorization: Bearer {}", s.token()),
            "-H",
            &format!("Content-Type: {}", c.content_type),
            "-X",
            c.method,
            "--data-binary",
            &format!("@{}", body_file.display()),
            &format!("https://127.0.0.1:{}{}", s.port, c.path),
        ]),
        None,
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn malformed_requests_get_4xx_status() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let cms = "/api/v1/namespaces/default/configmaps";
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_yaml = format!("a: {}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let mut cases = vec![
        case("POST", cms, "application/json", "{not json", 400),
        case("POST", cms, "application/json", "", 400),
        case("POST", cms, "application/json", "[]", 400),
        case("POST", cms, "application/json", "42", 400),
        case("POST", cms, "application/json", "null", 400),
        case("POST", cms, "application/yaml", "a: [b\n c: {", 400),
        case("POST", cms, "application/yaml", "- just\n- a list\n", 400),
        case("POST", cms, "application/json", &deep, 400),
        case("POST", cms, "application/yaml", &deep_yaml, 400),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#,
            400,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            400,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
            422,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
            422,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#,
            400,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"nope"}"#,
            400,
        ),
        case(
            "POST",
            cms,
            "application/json",
            // A number where a string goes does not decode: 400, as upstream's decoder.
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":5}}}"#,
            400,
        ),
        case(
            "POST",
            cms,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"bad key!":"v"}}"#,
            422,
        ),
        case(
            "POST",
            "/api/v1/namespaces/missing/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            404,
        ),
        case(
            "POST",
            cms,
            "application/vnd.kubernetes.protobuf",
            "k8s\0garbage",
            400,
        ),
        case("POST", cms, "application/cbor", "\u{a1}", 415),
        case(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{}}"#,
            422,
        ),
        case(
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":99999}]}}"#,
            422,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(b",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?fieldSelector=nonsense",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?fieldSelector=spec.nodeName%3Dx",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?limit=abc",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?continue=garbage",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?resourceVersion=xyz&watch=true",
            "application/json",
            "",
            400,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps?dryRun=Some",
            "application/json",
            "",
            200,
        ),
        case("GET", "/api/v1/nonexistent", "application/json", "", 404),
        case("GET", "/apis/nope/v1/things", "application/json", "", 404),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps/x/y/z/w",
            "application/json",
            "",
            404,
        ),
        case(
            "GET",
            "/api/v1/namespaces/default/configmaps/..%2f..%2fetc",
            "application/json",
            "",
            404,
        ),
        case(
            "PUT",
            "/api/v1/namespaces/default/configmaps/nothere",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nothere"}}"#,
            404,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/nothere",
            "application/merge-patch+json",
            "{}",
            404,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json-patch+json",
            "{bad",
            400,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json-patch+json",
            r#"[{"op":"explode","path":"/a"}]"#,
            400,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/nope/deeper"}]"#,
            422,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/strategic-merge-patch+json",
            r#"{"data":{"$patch":"explode"}}"#,
            400,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/merge-patch+json",
            r#"{"metadata":{"name":"other"}}"#,
            400,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/merge-patch+json",
            r#"{"metadata":{"resourceVersion":"1"}}"#,
            409,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/apply-patch+yaml",
            "a: b",
            400,
        ),
        // An apply configuration of another version than the endpoint's.
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed?fieldManager=t",
            "application/apply-patch+yaml",
            "apiVersion: apps/v1\nkind: ConfigMap\nmetadata:\n  name: seed\n",
            400,
        ),
        case(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/seed",
            "text/plain",
            "x",
            415,
        ),
        case(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json",
            r#"{"propagationPolicy":"Sideways"}"#,
            422,
        ),
        case(
            "DELETE",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json",
            r#"{"preconditions":{"uid":"not-the-uid"}}"#,
            409,
        ),
        case("POST", "/version", "application/json", "{}", 405),
    ];
    cases.push(Case {
        method: "POST",
        path: cms,
        content_type: "application/json",
        body: big.into_bytes(),
        expect: 413,
    });
    cases.push(Case {
        method: "POST",
        path: cms,
        content_type: "application/json",
        body: vec![0xff, 0xfe, 0x00, 0x7b],
        expect: 400,
    });
    cases.push(Case {
        method: "POST",
        path: cms,
        content_type: "application/yaml",
        body: vec![0xff, 0xfe, 0x00, 0x7b],
        expect: 400,
    });

    let seed = case(
        "POST",
        cms,
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seed"},"data":{"a":"1"}}"#,
        201,
    );
    assert_eq!(send(&s, &seed).0, 201, "seed object");
    let mut failures = Vec::new();
    for c in &cases {
        let (code, body) = send(&s, c);
        if code != c.expect {
            failures.push(format!(
                "{} {} ({} bytes of {}): got {code}, want {}: {}",
                c.method,
                c.path,
                c.body.len(),
                c.content_type,
                c.expect,
                &body[..body.len().min(300)]
            ));
            continue;
        }
        if code >= 400 {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if status["kind"] != "Status" || status["code"] != code {
                failures.push(format!(
                    "{} {}: {code} without a Status body: {}",
                    c.method,
                    c.path,
                    &body[..body.len().min(300)]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Still alive, and the seed object is intact.
    let (code, body) = send(
        &s,
        &case(
            "GET",
            "/api/v1/namespaces/default/configmaps/seed",
            "application/json",
            "",
            200,
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""a":"1""#), "{body}");
    assert!(
        !s.log().contains("panicked"),
        "the server panicked: {}",
        s.log()
    );
}
