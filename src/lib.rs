// Output goes through `core::runtime`'s stream writers (`cli::output` re-exports them):
// `println!`/`eprintln!` panic on a closed pipe.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

/// A fieldless enum declared with one spelling per variant (`Running = "running"`), written
/// once: `as_str`, `parse` (the spellings and nothing else), `ALL` (declaration order) and
/// `Display` as that spelling (padded to a width, when one is asked for).
/// Serde's `rename_all` says the same words for the JSON; a unit test per enum keeps them
/// in step where both exist.
macro_rules! text_enum {
    // The enum declared here, each variant with its spelling beside it.
    (
        $(#[$meta:meta])*
        $vis:vis enum $t:ident {
            $($(#[$vmeta:meta])* $v:ident = $s:literal),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $t {
            $($(#[$vmeta])* $v),*
        }
        text_enum!($t { $($v = $s),* });
    };
    // The methods and `Display` of an enum declared by the arm above.
    ($t:ty { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
            pub const ALL: &'static [Self] = &[$(Self::$v),*];
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

pub mod cli;
pub mod core;
pub mod sys;
pub mod tui;

#[cfg(test)]
mod tests {
    /// Each `text_enum!` spelling is the one serde writes (and, where it reads, accepts).
    #[test]
    fn text_enum_spellings_are_serdes() {
        fn same<T: serde::Serialize + std::fmt::Display + Copy>(all: &[T]) {
            for v in all {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{v}\""));
            }
        }
        fn reads<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Copy>(
            all: &[T],
            name: impl Fn(T) -> &'static str,
        ) {
            for v in all {
                let back: T = serde_json::from_str(&format!("\"{}\"", name(*v))).unwrap();
                assert_eq!(back, *v);
            }
        }
        use crate::core::egress::policy::Mode;
        use crate::core::host::Vmm;
        use crate::core::images::listing::Kind;
        use crate::core::images::manifest::{Arch, Os};
        use crate::core::snapshot::SnapshotType;
        use crate::sys::state::VmStatus;
        use crate::sys::vmm::{qemu::Machine, Accel};
        same(VmStatus::ALL);
        same(Machine::ALL);
        same(Accel::ALL);
        same(SnapshotType::ALL);
        same(Kind::ALL);
        same(Mode::ALL);
        same(Vmm::ALL);
        same(Arch::ALL);
        same(Os::ALL);
        same(crate::core::host::AccelRequest::ALL);
        same(crate::core::images::archive::Kind::ALL);
        same(crate::core::start::Phase::ALL);
        reads(VmStatus::ALL, VmStatus::as_str);
        reads(Mode::ALL, Mode::as_str);
        reads(Vmm::ALL, Vmm::as_str);
        reads(Arch::ALL, Arch::as_str);
        reads(Os::ALL, Os::as_str);
        use crate::core::images::archive::Kind as ArchiveKind;
        reads(ArchiveKind::ALL, ArchiveKind::as_str);
        assert_eq!(Kind::parse("smolvm-cache"), Some(Kind::SmolvmCache));
        assert_eq!(VmStatus::parse("Running"), None);
    }
}
