//! Docker reachability, diagnosed with SmolVM's exact messages
//! (`images/builder.py: docker_requirement_error`, reference §6). Shared by the image
//! builder (before a Docker build) and `doctor`.

use std::path::Path;
use std::time::Duration;

use crate::core::host::which;
use crate::sys::env::{BadSetting, Env};

/// How long `docker version` may take before the daemon counts as unreachable (SmolVM: 10 s;
/// `SMOLVM_DOCKER_TIMEOUT_MS` overrides it).
pub const INFO_TIMEOUT: Duration = Duration::from_secs(10);

pub const NOT_INSTALLED: &str =
    "Docker is required to build images. Install Docker Desktop (macOS) or docker.io (Linux).";
const START_HINT: &str = "Docker is installed, but SmolVM could not reach the Docker daemon. Start Docker Desktop or the Docker service and try again.";

/// Why Docker cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerProblem {
    NotInstalled,
    Timeout,
    PermissionDenied(String),
    DaemonDown(String),
    Other(String),
}

impl DockerProblem {
    /// SmolVM's message for this problem, word for word.
    pub fn message(&self) -> String {
        match self {
            DockerProblem::NotInstalled => NOT_INSTALLED.to_string(),
            DockerProblem::Timeout => format!(
                "{START_HINT} Original Docker error: timed out while contacting Docker."
            ),
            DockerProblem::PermissionDenied(d) => format!(
                "Docker is installed, but this user cannot access the Docker daemon socket. Make sure Docker Desktop is running or grant access to /var/run/docker.sock. Original Docker error: {d}"
            ),
            DockerProblem::DaemonDown(d) => format!("{START_HINT} Original Docker error: {d}"),
            DockerProblem::Other(d) => format!(
                "Docker is required to build images, but Docker could not be used successfully. Install Docker Desktop (macOS) or docker.io (Linux). Original Docker error: {}",
                if d.is_empty() { "unknown error." } else { d }
            ),
        }
    }

    /// Classify a failed `docker version`'s output the way SmolVM does.
    pub fn classify(details: &str) -> DockerProblem {
        let d = details.trim().to_string();
        let lower = d.to_lowercase();
        if lower.contains("permission denied") && lower.contains("docker.sock") {
            DockerProblem::PermissionDenied(d)
        } else if lower.contains("cannot connect to the docker daemon")
            || lower.contains("is the docker daemon running")
            || lower.contains("error during connect")
        {
            DockerProblem::DaemonDown(d)
        } else {
            DockerProblem::Other(d)
        }
    }
}

/// The Docker server version when the daemon answers, else why not (`docker version`,
/// bounded).
pub fn check(env: &Env) -> Result<String, DockerProblem> {
    let Some(docker) = which(env, "docker") else {
        return Err(DockerProblem::NotInstalled);
    };
    let timeout = info_timeout(env).map_err(|bad| DockerProblem::Other(bad.message))?;
    check_binary(&docker, timeout)
}

/// [`INFO_TIMEOUT`], or `SMOLVM_DOCKER_TIMEOUT_MS` when set (tests use a short one):
/// 1 ms to 24 h, anything else a [`BadSetting`] naming it.
pub fn info_timeout(env: &Env) -> Result<Duration, BadSetting> {
    env.count(
        "SMOLVM_DOCKER_TIMEOUT_MS",
        INFO_TIMEOUT.as_millis() as u64,
        1,
        crate::sys::env::MAX_SECONDS * 1000,
    )
    .map(Duration::from_millis)
}

pub fn check_binary(docker: &Path, timeout: Duration) -> Result<String, DockerProblem> {
    // `docker version` rather than `docker info --format {{.ServerVersion}}`: with the
    // daemon down, Debian's 20.10 client answers the latter with only a template error
    // (`<.ServerVersion>: … nil pointer`), while every client's `version` names the socket
    // it could not reach.
    let argv = [
        docker.as_os_str(),
        "version".as_ref(),
        "--format".as_ref(),
        "{{.Server.Version}}".as_ref(),
    ];
    match crate::sys::child::run_bounded(&argv, timeout) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DockerProblem::NotInstalled),
        Err(e) => Err(DockerProblem::Other(crate::core::error::io_reason(&e))),
        Ok(None) => Err(DockerProblem::Timeout),
        Ok(Some((st, out, err))) => {
            let version = out.trim();
            if st.success() && !version.is_empty() {
                Ok(version.to_string())
            } else {
                let details = if err.trim().is_empty() { out } else { err };
                Err(DockerProblem::classify(&details))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_smolvm() {
        let d = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";
        let p = DockerProblem::classify(d);
        assert_eq!(p, DockerProblem::DaemonDown(d.to_string()));
        assert_eq!(
            p.message(),
            format!("Docker is installed, but SmolVM could not reach the Docker daemon. Start Docker Desktop or the Docker service and try again. Original Docker error: {d}")
        );
        let d = "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock";
        assert!(matches!(
            DockerProblem::classify(d),
            DockerProblem::PermissionDenied(_)
        ));
        assert!(DockerProblem::Other(String::new())
            .message()
            .ends_with("Original Docker error: unknown error."));
    }
}
