//! Version identity: which image cache is "current".

use super::error::{Error, Result};
use crate::sys::env::Env;

/// This build's crate version.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest image version accepted from `SMOLVM_IMAGE_VERSION`.
pub const MAX_VERSION_LEN: usize = 64;

/// The image version whose cache is current: `SMOLVM_IMAGE_VERSION` when set (and not
/// empty), else this build's crate version. Every other versioned cache is stale to `prune`.
///
/// The value names a directory under the images root, so it is checked here, where it is
/// read: it must look like a version — ASCII letters, digits, `.`, `+`, `-` and `_`,
/// starting with a letter or digit (so never `.`, `..`, a path or a flag), at most
/// [`MAX_VERSION_LEN`] characters. Anything else is a usage error naming the variable.
pub fn image_version(env: &Env) -> Result<String> {
    let Some(raw) = env.get("SMOLVM_IMAGE_VERSION") else {
        return Ok(CRATE_VERSION.to_string());
    };
    let text = raw.to_string_lossy();
    let v = text.trim();
    if v.is_empty() {
        // Blank like empty: unset (SmolVM tests the variable for truth).
        return Ok(CRATE_VERSION.to_string());
    }
    let valid = v.len() <= MAX_VERSION_LEN
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_'));
    if !valid || raw.to_str().is_none() {
        let shown: String = text.chars().take(MAX_VERSION_LEN + 16).collect();
        return Err(Error::usage(format!(
            "SMOLVM_IMAGE_VERSION must be a version such as 0.0.36 (letters, digits, '.', '+', \
             '-', '_', starting with a letter or digit, at most {MAX_VERSION_LEN} characters), \
             got {shown:?}"
        ))
        .with_recovery("Set SMOLVM_IMAGE_VERSION to a version, or unset it."));
    }
    Ok(v.to_string())
}

/// `smolvm --version`: `smolvm <crate version> (images <image version>)`.
pub fn version_line(env: &Env) -> Result<String> {
    Ok(format!(
        "smolvm {CRATE_VERSION} (images {})",
        image_version(env)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> Env {
        Env::from_vars([("SMOLVM_IMAGE_VERSION", v)], 1000)
    }

    #[test]
    fn image_version_defaults_to_crate_version_and_can_be_overridden() {
        assert_eq!(image_version(&Env::default()).unwrap(), CRATE_VERSION);
        assert_eq!(image_version(&with("")).unwrap(), CRATE_VERSION);
        assert_eq!(image_version(&with("  ")).unwrap(), CRATE_VERSION);
        let e = with("0.0.36");
        assert_eq!(image_version(&e).unwrap(), "0.0.36");
        assert_eq!(
            version_line(&e).unwrap(),
            format!("smolvm {CRATE_VERSION} (images 0.0.36)")
        );
        for ok in [
            "0.0.24.post3",
            "1.2.3-rc.1+build_5",
            "v2",
            "0.1.0a1",
            " 0.0.1 ",
        ] {
            assert_eq!(image_version(&with(ok)).unwrap(), ok.trim());
        }
        assert_eq!(
            image_version(&with(&"1".repeat(MAX_VERSION_LEN)))
                .unwrap()
                .len(),
            MAX_VERSION_LEN
        );
    }

    #[test]
    fn image_version_that_is_not_a_version_is_a_usage_error() {
        let long = "1".repeat(MAX_VERSION_LEN + 1);
        for bad in [
            "..",
            ".",
            "../x",
            "/etc",
            "a/b",
            "0.0.1/..",
            "-rf",
            ".hidden",
            "0.0.1 x",
            "0\t1",
            "0.0.\u{e9}",
            "x\u{7f}",
            "a\\b",
            "a:b",
            "*",
            &long,
        ] {
            let e = image_version(&with(bad)).unwrap_err();
            assert_eq!(e.code, crate::core::ErrorCode::Usage, "{bad:?}");
            assert!(e
                .message
                .starts_with("SMOLVM_IMAGE_VERSION must be a version"));
            assert!(version_line(&with(bad)).is_err());
        }
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = Env::from_vars(
            [(
                "SMOLVM_IMAGE_VERSION",
                std::ffi::OsStr::from_bytes(b"0.0.\xff"),
            )],
            1000,
        );
        assert!(image_version(&not_utf8).is_err());
    }
}
