//! Test certificates generated with the `openssl` command-line tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::find_on_path;

/// Paths of the TLS material generated for a cluster.
///
/// The server certificate is valid for `IP:127.0.0.1` and `DNS:localhost`, signed by a
/// fresh test CA (EC P-256, valid for ten years). A client trusts the servers by adding
/// [`TlsFiles::ca_cert`] to its root store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM). Trust this in the client.
    pub ca_cert: PathBuf,
    /// The CA private key (PEM, PKCS#8).
    pub ca_key: PathBuf,
    /// The server certificate (PEM), used by every instance.
    pub server_cert: PathBuf,
    /// The server private key (PEM, PKCS#8).
    pub server_key: PathBuf,
}

impl TlsFiles {
    /// Generate a CA and a server certificate into `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<TlsFiles> {
        let openssl = find_on_path("openssl").ok_or_else(|| {
            Error::Other(
                "openssl not found on PATH; install it with `sudo apt-get install -y openssl` \
                 or run scripts/ensure-redis.sh"
                    .into(),
            )
        })?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("ca.cnf"),
            "[req]\n\
             distinguished_name = dn\n\
             prompt = no\n\
             x509_extensions = v3_ca\n\
             [dn]\n\
             CN = redlock-harness test CA\n\
             [v3_ca]\n\
             basicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid:always\n",
        )?;
        std::fs::write(
            dir.join("server.cnf"),
            "[req]\n\
             distinguished_name = dn\n\
             prompt = no\n\
             [dn]\n\
             CN = localhost\n",
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth,clientAuth\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid,issuer\n",
        )?;
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(dir)
                .env_remove("OPENSSL_CONF")
                .output()
                .map_err(|e| Error::Other(format!("cannot run openssl: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(Error::Other(format!(
                    "openssl {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        };
        let genkey = |out: &str| {
            run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                out,
            ])
        };
        genkey("ca.key")?;
        run(&[
            "req", "-x509", "-new", "-key", "ca.key", "-config", "ca.cnf", "-days", "3650",
            "-sha256", "-out", "ca.crt",
        ])?;
        genkey("server.key")?;
        run(&[
            "req",
            "-new",
            "-key",
            "server.key",
            "-config",
            "server.cnf",
            "-out",
            "server.csr",
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ])?;
        Ok(TlsFiles {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        })
    }

    /// The CA certificate as PEM bytes.
    pub fn ca_cert_pem(&self) -> Result<Vec<u8>> {
        Ok(std::fs::read(&self.ca_cert)?)
    }
}
