//! Version identity: which image cache is "current".

use crate::sys::env::Env;

/// This build's crate version.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The image version whose cache is current: `SMOLVM_IMAGE_VERSION` when set, else this
/// build's crate version. Every other versioned cache is stale to `prune`.
pub fn image_version(env: &Env) -> String {
    env.get_str("SMOLVM_IMAGE_VERSION")
        .unwrap_or(CRATE_VERSION)
        .to_string()
}

/// `smolvm --version`: `smolvm <crate version> (images <image version>)`.
pub fn version_line(env: &Env) -> String {
    format!("smolvm {CRATE_VERSION} (images {})", image_version(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_version_defaults_to_crate_version_and_can_be_overridden() {
        assert_eq!(image_version(&Env::default()), CRATE_VERSION);
        let e = Env::from_vars([("SMOLVM_IMAGE_VERSION", "0.0.36")], 1000);
        assert_eq!(image_version(&e), "0.0.36");
        assert_eq!(
            version_line(&e),
            format!("smolvm {CRATE_VERSION} (images 0.0.36)")
        );
    }
}
