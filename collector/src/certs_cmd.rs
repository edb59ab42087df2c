//! `vigil-collector certs init` and `certs issue-agent`: create a CA plus the collector's
//! certificate, and issue agent certificates into a directory an agent can use as-is.

use std::path::Path;
use vigil_shared::certs::{self, files, CertPair, Role};

/// Errors from the certificate commands.
#[derive(Debug, thiserror::Error)]
pub enum CertsCmdError {
    /// Generating or signing failed.
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `init` refuses to overwrite an existing CA.
    #[error("{0} already exists; refusing to replace the CA (delete the directory to start over)")]
    Exists(String),
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), CertsCmdError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertsCmdError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)
}

fn read(path: &Path) -> Result<String, CertsCmdError> {
    std::fs::read_to_string(path).map_err(|source| CertsCmdError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn mkdir(dir: &Path) -> Result<(), CertsCmdError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsCmdError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// Creates `ca.pem`, `ca.key`, `collector.pem` and `collector.key` in `dir`. The collector
/// certificate names `localhost`, `127.0.0.1`, `::1`, this host's name and every `--san`.
pub fn init(dir: &Path, extra_sans: &[String]) -> Result<(), CertsCmdError> {
    mkdir(dir)?;
    let ca_path = dir.join(files::CA_CERT);
    if ca_path.exists() {
        return Err(CertsCmdError::Exists(ca_path.display().to_string()));
    }
    let ca = certs::generate_ca("Vigil CA")?;
    let mut sans: Vec<String> = vec!["127.0.0.1".into(), "::1".into()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        sans.push(h.trim().to_string());
    }
    sans.extend(extra_sans.iter().cloned());
    sans.dedup();
    let collector = certs::issue(&ca, Role::Collector, "localhost", &sans)?;
    write(&dir.join(files::CA_KEY), &ca.key_pem, true)?;
    write(&dir.join(files::COLLECTOR_CERT), &collector.cert_pem, false)?;
    write(&dir.join(files::COLLECTOR_KEY), &collector.key_pem, true)?;
    write(&ca_path, &ca.cert_pem, false)?;
    Ok(())
}

/// Issues an agent certificate for `name` and writes `ca.pem`, `agent.pem` and `agent.key`
/// into `out`.
pub fn issue_agent(dir: &Path, name: &str, out: &Path) -> Result<(), CertsCmdError> {
    let ca = CertPair {
        cert_pem: read(&dir.join(files::CA_CERT))?,
        key_pem: read(&dir.join(files::CA_KEY))?,
    };
    let agent = certs::issue(&ca, Role::Agent, name, &[])?;
    mkdir(out)?;
    write(&out.join(files::CA_CERT), &ca.cert_pem, false)?;
    write(&out.join(files::AGENT_CERT), &agent.cert_pem, false)?;
    write(&out.join(files::AGENT_KEY), &agent.key_pem, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_produces_a_usable_agent_directory_and_init_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("vigil-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init(&dir, &["collector.example".into()]).unwrap();
        assert!(matches!(init(&dir, &[]), Err(CertsCmdError::Exists(_))));
        let out = dir.join("agent-a");
        issue_agent(&dir, "agent-a", &out).unwrap();
        let pem = std::fs::read(out.join(files::AGENT_CERT)).unwrap();
        assert_eq!(certs::identity_from_pem(&pem).unwrap(), "agent-a");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(files::AGENT_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            issue_agent(&dir, "../x", &out),
            Err(CertsCmdError::Cert(_))
        ));
    }
}
