//! A kind served in two versions (HorizontalPodAutoscaler, autoscaling/v1 and v2) is stored once
//! and converted both ways, as upstream does.

use skiff_testkit::{TestServer, kubectl_135};

#[test]
fn hpa_is_converted_between_v1_and_v2() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_skiff").as_ref());
    let k = kubectl_135();
    let v1 = "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 1\n  maxReplicas: 4\n  targetCPUUtilizationPercentage: 60\n";
    let out = s.run_stdin(&k, &["apply", "-f", "-"], Some(v1));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let as_v2 = s.ok(
        &k,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "json",
        ],
    );
    let v2: serde_json::Value = serde_json::from_str(&as_v2).expect("json");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60,
        "{v2}"
    );
    // Change it through v2; v1 sees the new target.
    s.ok(&k, &["patch", "horizontalpodautoscalers.v2.autoscaling", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/metrics/0/resource/target/averageUtilization","value":75}]"#]);
    let as_v1 = s.ok(
        &k,
        &[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}",
        ],
    );
    assert_eq!(as_v1, "autoscaling/v1 75");
    // Applying the v1 manifest again puts 60 back.
    let out = s.run_stdin(&k, &["apply", "-f", "-"], Some(v1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configured"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = s.ok(
        &k,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={.spec.metrics[0].resource.target.averageUtilization}",
        ],
    );
    assert_eq!(again, "60");
}
