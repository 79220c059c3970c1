//! The context a face works in: which host (a [`Target`]), its environment, its locations
//! resolved once, its facts probed once, and the opener of its state store. The CLI makes
//! one per command, the dashboard one per session and hands it to every job; nothing in a
//! face resolves paths or opens the store itself. A second host later (a remote target) is
//! one more [`Target`] and its implementation here.

use std::sync::{Arc, OnceLock};

use super::error::Result;
use super::host::Host;
use super::start::Ctx;
use crate::sys::env::Env;
use crate::sys::paths::Paths;

/// Which host the context works on. Only this machine exists today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Local,
}

struct Inner {
    target: Target,
    env: Env,
    paths: Paths,
    host: OnceLock<Host>,
}

/// One opened context: cheap to clone (every clone shares it).
#[derive(Clone)]
pub struct Context(Arc<Inner>);

impl Context {
    /// The context of `target`, resolved from `env`.
    pub fn open(target: Target, env: &Env) -> Context {
        match target {
            Target::Local => Context(Arc::new(Inner {
                target,
                env: env.clone(),
                paths: Paths::resolve(env, None),
                host: OnceLock::new(),
            })),
        }
    }

    /// This machine's context.
    pub fn local(env: &Env) -> Context {
        Context::open(Target::Local, env)
    }

    pub fn target(&self) -> Target {
        self.0.target
    }

    pub fn env(&self) -> &Env {
        &self.0.env
    }

    /// Where everything is, resolved when the context was opened.
    pub fn paths(&self) -> &Paths {
        &self.0.paths
    }

    /// The host's facts (KVM, VMMs, architecture), probed the first time they are asked for.
    pub fn host(&self) -> &Host {
        self.0.host.get_or_init(|| Host::probe(&self.0.env))
    }

    /// Open the state store for one job ([`Ctx`]), with this context's paths and host
    /// facts.
    pub fn job(&self) -> Result<Ctx> {
        Ctx::open_with(&self.0.env, self.0.paths.clone(), self.host().clone())
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("target", &self.0.target)
            .field("paths", &self.0.paths)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_resolves_once_and_its_jobs_share_it() {
        let t = tempfile::tempdir().unwrap();
        let env = Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
        let c = Context::local(&env);
        assert_eq!(c.target(), Target::Local);
        assert_eq!(c.paths().home, t.path());
        let job = c.job().unwrap();
        assert_eq!(job.paths.images_root, c.paths().images_root);
        assert_eq!(&job.host, c.host());
        let again = c.clone();
        assert!(std::ptr::eq(again.paths(), c.paths()));
    }
}
