//! The cluster's certificate authority, the API server's serving certificate and the admin token.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

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
            let ca_key =
                KeyPair::from_pem(&ca_key_pem).map_err(|_| PkiError::Invalid(ca_key.clone()))?;
            let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "skiff-ca");
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let issuer = Issuer::new(ca_params, ca_key);
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
        })
    }

    /// The signer of service account tokens.
    pub fn token_signer(&self) -> Result<crate::tokens::Signer, PkiError> {
        let invalid = || PkiError::Invalid(PathBuf::from("service-account.key"));
        let key = KeyPair::from_pem(&self.service_account_key_pem).map_err(|_| invalid())?;
        crate::tokens::Signer::from_pkcs8(key.serialized_der()).map_err(|_| invalid())
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
            .with_no_client_auth()
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
