//! NodePorts: a pod's host ports must be free on the node (same protocol and port, and the
//! same address or either side on 0.0.0.0).

use crate::cache::NodeInfo;
use crate::framework::{Plugin, Status};
use crate::pod_info::{HostPort, PodInfo};

pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

fn conflicts(want: &HostPort, used: &HostPort) -> bool {
    want.port == used.port
        && want.protocol == used.protocol
        && (want.ip == used.ip || want.ip == "0.0.0.0" || used.ip == "0.0.0.0")
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    if pod.host_ports.is_empty() || node.used_ports.is_empty() {
        return Ok(());
    }
    let clash = pod
        .host_ports
        .iter()
        .any(|w| node.used_ports.keys().any(|u| conflicts(w, u)));
    if clash {
        Err(Status::unschedulable(Plugin::NodePorts, REASON))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{ContainerPort, Pod};

    fn with_port(mut p: Pod, ip: &str, proto: &str, port: i32) -> Pod {
        if let Some(s) = p.spec.as_mut() {
            s.containers[0].ports = Some(vec![ContainerPort {
                container_port: 80,
                host_port: Some(port),
                host_ip: (!ip.is_empty()).then(|| ip.to_string()),
                protocol: Some(proto.into()),
                ..ContainerPort::default()
            }]);
        }
        p
    }

    #[test]
    fn host_port_conflicts() {
        let c = cache(
            vec![node("n", "1", "1Gi", "10")],
            vec![on(
                with_port(pod("a", "", ""), "10.0.0.1", "TCP", 8080),
                "n",
            )],
        );
        let n = c.node_info("n").expect("n");
        let same = info(with_port(pod("b", "", ""), "", "TCP", 8080));
        assert_eq!(
            filter(&same, n).expect_err("conflict").reasons,
            vec![REASON]
        );
        let other_ip = info(with_port(pod("b", "", ""), "10.0.0.2", "TCP", 8080));
        assert!(filter(&other_ip, n).is_ok());
        let udp = info(with_port(pod("b", "", ""), "", "UDP", 8080));
        assert!(filter(&udp, n).is_ok());
        let other_port = info(with_port(pod("b", "", ""), "", "TCP", 8081));
        assert!(filter(&other_port, n).is_ok());
    }
}
