//! The cluster's certificate authority, the API server's serving certificate and the admin token.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The CA's subject and constraints, as its certificate was made: an issuer built from them
/// and the CA key signs certificates that chain to it.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn ca_issuer(ca_key_pem: &str) -> Result<Issuer<'static, KeyPair>, rcgen::Error> {
    Ok(Issuer::new(ca_params()?, KeyPair::from_pem(ca_key_pem)?))
}

/// How long before now a signed certificate starts, so that clocks a little behind accept it
/// (upstream's signer backdates by five minutes).
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// The signers whose requests the cluster CA signs, as kube-controller-manager's signer does.
pub const SIGNERS: &[&str] = &[
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
    "kubernetes.io/kubelet-serving",
    "kubernetes.io/legacy-unknown",
];

fn dn_text(v: &rcgen::DnValue) -> &str {
    match v {
        rcgen::DnValue::Utf8String(s) => s,
        rcgen::DnValue::PrintableString(s) => s.as_str(),
        rcgen::DnValue::Ia5String(s) => s.as_str(),
        rcgen::DnValue::TeletexString(s) => s.as_str(),
        _ => "",
    }
}

/// Upstream's per-signer rules on a request (signer.go and the kubelet CSR checks).
fn check_signer_policy(
    signer: &str,
    params: &CertificateParams,
    usages: &[String],
) -> Result<(), String> {
    let text = |ty: DnType| {
        params
            .distinguished_name
            .get(&ty)
            .map(dn_text)
            .unwrap_or("")
    };
    let kubelet = |required: &str, optional: &[&str]| -> Result<(), String> {
        if text(DnType::OrganizationName) != "system:nodes" {
            return Err("subject organization is not system:nodes".into());
        }
        if !text(DnType::CommonName).starts_with("system:node:") {
            return Err("subject common name does not begin with system:node:".into());
        }
        check_usages(usages, required, optional)
    };
    match signer {
        "kubernetes.io/kube-apiserver-client" => check_usages(
            usages,
            "client auth",
            &["digital signature", "key encipherment"],
        ),
        "kubernetes.io/kube-apiserver-client-kubelet" => {
            if !params.subject_alt_names.is_empty() {
                return Err("subject alternative names are not allowed".into());
            }
            kubelet("client auth", &["digital signature", "key encipherment"])
        }
        "kubernetes.io/kubelet-serving" => {
            let names_host = params
                .subject_alt_names
                .iter()
                .all(|n| matches!(n, SanType::DnsName(_) | SanType::IpAddress(_)));
            if !names_host || params.subject_alt_names.is_empty() {
                return Err("DNS or IP subjectAltName is required, and only those".into());
            }
            kubelet("server auth", &["digital signature", "key encipherment"])
        }
        "kubernetes.io/legacy-unknown" => Ok(()),
        other => Err(format!("the cluster CA does not sign for {other}")),
    }
}

fn check_usages(usages: &[String], required: &str, optional: &[&str]) -> Result<(), String> {
    if let Some(bad) = usages
        .iter()
        .find(|u| u.as_str() != required && !optional.contains(&u.as_str()))
    {
        return Err(format!("invalid usage for this signer: {bad}"));
    }
    if !usages.iter().any(|u| u == required) {
        return Err(format!("missing required usage: {required}"));
    }
    Ok(())
}

/// Signs a PEM certificate request with the cluster CA for `seconds`, with the key usages
/// and extended key usages of `usages` (a CertificateSigningRequest's `spec.usages`), after
/// the rules of `signer`. The certificate keeps the request's subject and subject
/// alternative names.
pub fn sign_request(
    ca_key_pem: &str,
    signer: &str,
    request_pem: &str,
    usages: &[String],
    seconds: i64,
) -> Result<String, String> {
    let mut request = rcgen::CertificateSigningRequestParams::from_pem(request_pem)
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    check_signer_policy(signer, &request.params, usages)?;
    let issuer = ca_issuer(ca_key_pem).map_err(|e| format!("the cluster CA cannot sign: {e}"))?;
    let now = time::OffsetDateTime::now_utc();
    let params = &mut request.params;
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::seconds(seconds);
    params.is_ca = IsCa::NoCa;
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| "no randomness for a serial number".to_string())?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = Vec::new();
    params.extended_key_usages = Vec::new();
    for usage in usages {
        match usage.as_str() {
            "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
            "content commitment" => params.key_usages.push(KeyUsagePurpose::ContentCommitment),
            "data encipherment" => params.key_usages.push(KeyUsagePurpose::DataEncipherment),
            "key agreement" => params.key_usages.push(KeyUsagePurpose::KeyAgreement),
            "cert sign" => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
            "crl sign" => params.key_usages.push(KeyUsagePurpose::CrlSign),
            "client auth" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
            "code signing" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::EmailProtection),
            "timestamping" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::OcspSigning),
            _ => {}
        }
    }
    request
        .signed_by(&issuer)
        .map(|cert| cert.pem())
        .map_err(|e| format!("signing failed: {e}"))
}

/// The user a verified client certificate names, as upstream's x509 authenticator reads it:
/// the subject's common name, and its organizations as groups.
pub fn certificate_user(der: &[u8]) -> Option<(String, Vec<String>)> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((name, groups))
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid tls material in {0}")]
    Invalid(PathBuf),
}

/// The TLS material and credentials of one cluster, kept under `DATA/tls`.
pub struct Pki {
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    /// Bearer token of the cluster admin (`system:admin`, group `system:masters`).
    pub admin_token: String,
    /// Token agents present to join.
    pub node_token: String,
    /// The key service account tokens are signed with (PEM, PKCS#8 ECDSA P-256).
    pub service_account_key_pem: String,
    /// The CA's private key, for signing approved CertificateSigningRequests.
    ca_key_pem: String,
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random token of 32 hex characters.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Pki {
    /// Loads the material under `dir`, generating whatever is missing. The serving certificate
    /// is regenerated when `sans` name something it does not cover.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let ca_cert = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let (ca_pem, ca_key_pem) = if ca_cert.exists() && ca_key.exists() {
            (read(&ca_cert)?, read(&ca_key)?)
        } else {
            let key = KeyPair::generate()?;
            let mut params = ca_params()?;
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2124, 1, 1);
            let cert = params.self_signed(&key)?;
            write_private(&ca_key, &key.serialize_pem())?;
            write_private(&ca_cert, &cert.pem())?;
            (cert.pem(), key.serialize_pem())
        };
        let sans_file = dir.join("serving.sans");
        let wanted = sans.join(",");
        let serving_cert = dir.join("serving.crt");
        let serving_key = dir.join("serving.key");
        let fresh = serving_cert.exists()
            && serving_key.exists()
            && read(&sans_file).ok().as_deref() == Some(wanted.as_str());
        let (serving_cert_pem, serving_key_pem) = if fresh {
            (read(&serving_cert)?, read(&serving_key)?)
        } else {
            let issuer = ca_issuer(&ca_key_pem).map_err(|_| PkiError::Invalid(ca_key.clone()))?;
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "kube-apiserver");
            params.subject_alt_names = sans
                .iter()
                .map(|s| match s.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
                })
                .collect::<Result<_, rcgen::Error>>()?;
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2124, 1, 1);
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&serving_key, &key.serialize_pem())?;
            write_private(&serving_cert, &cert.pem())?;
            write_private(&sans_file, &wanted)?;
            (cert.pem(), key.serialize_pem())
        };
        let token_or_new = |name: &str| -> Result<String, PkiError> {
            let p = dir.join(name);
            match read(&p) {
                Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                _ => {
                    let t = random_token();
                    write_private(&p, &t)?;
                    Ok(t)
                }
            }
        };
        let sa_key = dir.join("service-account.key");
        let service_account_key_pem = match read(&sa_key) {
            Ok(pem) => pem,
            Err(_) => {
                let pem = KeyPair::generate()?.serialize_pem();
                write_private(&sa_key, &pem)?;
                pem
            }
        };
        Ok(Pki {
            ca_pem,
            serving_cert_pem,
            serving_key_pem,
            admin_token: token_or_new("admin.token")?,
            node_token: token_or_new("node.token")?,
            service_account_key_pem,
            ca_key_pem,
        })
    }

    /// A signer of certificate requests with the cluster CA (see [`sign_request`]), for the
    /// CSR signing controller.
    pub fn request_signer(
        &self,
    ) -> impl Fn(&str, &str, &[String], i64) -> Result<String, String> + Send + Sync + 'static {
        let key = self.ca_key_pem.clone();
        move |signer, request, usages, seconds| sign_request(&key, signer, request, usages, seconds)
    }

    /// The signer of service account tokens.
    pub fn token_signer(&self) -> Result<crate::tokens::Signer, PkiError> {
        let invalid = || PkiError::Invalid(PathBuf::from("service-account.key"));
        let key = KeyPair::from_pem(&self.service_account_key_pem).map_err(|_| invalid())?;
        crate::tokens::Signer::from_pkcs8(key.serialized_der()).map_err(|_| invalid())
    }

    /// Client certificates are optional; one that is presented must chain to the cluster CA.
    fn client_verifier(
        &self,
    ) -> Option<std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.ok()?).ok()?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .allow_unauthenticated()
            .build()
            .ok()
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = || PkiError::Invalid(PathBuf::from("serving.crt"));
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.serving_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| invalid())?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes())
            .map_err(|_| invalid())?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| invalid())?
            .with_client_cert_verifier(self.client_verifier().ok_or_else(invalid)?)
            .with_single_cert(certs, key)
            .map_err(|_| invalid())?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// The join token agents present, k3s-style: `K10<sha256 of the CA PEM>::node:<secret>`.
    /// Agents check the CA they fetch from `/cacerts` against the hash; the API server accepts
    /// the whole string as a bearer token.
    pub fn join_token(&self) -> String {
        format!(
            "K10{}::node:{}",
            sha256_hex(self.ca_pem.as_bytes()),
            self.node_token
        )
    }

    /// An admin kubeconfig for `server` (e.g. `https://127.0.0.1:6443`).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: admin\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: admin\n  user:\n    token: {}\npreferences: {{}}\n",
            self.admin_token
        )
    }
}

/// Writes `contents` to `path` with mode 0600, atomically.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), PkiError> {
    write_private(path, contents)
}
