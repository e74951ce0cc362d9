//! Certificates made by the tests (rcgen): a CA, a server certificate for
//! localhost and 127.0.0.1, client certificates by common name (one
//! expired), and a second CA nothing trusts; written as PEM files into a
//! temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

/// A CA that signs certificates.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes the CA certificate; its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A certificate with common name `cn` and these SANs, valid now (or
    /// expired a year ago); (cert, key) paths.
    pub fn issue(&self, dir: &Path, cn: &str, sans: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let stem = if expired {
            format!("{cn}-expired")
        } else {
            cn.to_owned()
        };
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// Everything a TLS test needs, in one temporary directory.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server: (PathBuf, PathBuf),
    /// A CA the server does not know, and a client certificate it signed.
    pub other_ca: PathBuf,
    pub stranger: (PathBuf, PathBuf),
    ca_: Ca,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_ = Ca::new("ringmq test CA");
        let ca = ca_.write(dir.path(), "ca");
        let server = ca_.issue(dir.path(), "localhost", &["localhost", "127.0.0.1"], false);
        let other = Ca::new("someone else's CA");
        let other_ca = other.write(dir.path(), "other-ca");
        let stranger = other.issue(dir.path(), "guest", &[], false);
        Certs {
            dir,
            ca,
            server,
            other_ca,
            stranger,
            ca_,
        }
    }

    /// A client certificate for `cn` signed by the CA.
    pub fn client(&self, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
        self.ca_.issue(self.dir.path(), cn, &[], expired)
    }
}
