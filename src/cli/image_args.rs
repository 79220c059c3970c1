//! The arguments of `image build`, `image save` and `image load` (beside `args.rs`, which
//! re-exports them).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::positive_seconds;
use crate::core::builder::{Base, Engine};
use crate::core::images::Arch;

#[derive(Debug, Args)]
pub struct ImageSaveArgs {
    /// A built image's name, or a pulled image's cache name (codex-amd64-qemu).
    pub name: String,
    /// The archive to write (.tar.zst).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it is an existing regular file.
    #[arg(long)]
    pub force: bool,
    /// The archive format: native (smolvm's .tar.zst) or smolvm (SmolVM 0.0.36's tar,
    /// published image caches only; always used for SmolVM's cache names).
    #[arg(long, value_enum, default_value = "native")]
    pub format: SaveFormat,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
}

/// `image build --backend`: SmolVM's values (libkrun and vz are refused here, clearly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuildBackend {
    Auto,
    Firecracker,
    Qemu,
    Libkrun,
    Vz,
}

/// `image save --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaveFormat {
    Native,
    Smolvm,
}

#[derive(Debug, Args)]
pub struct ImageLoadArgs {
    /// The archive to read (written by `smolvm image save`, ours or SmolVM's).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: PathBuf,
    /// Replace an image of the same name.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Image cache root (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images).
    #[arg(long, value_name = "PATH")]
    pub image_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Build a preset's local image (<preset>-local: the base plus the agent).
    #[arg(long, value_name = "PRESET", conflicts_with_all = ["tag", "ssh_password", "ssh_key", "name"])]
    pub preset: Option<String>,
    /// Each install step's bound with --preset, in seconds (default 600).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds, requires = "preset")]
    pub install_timeout: Option<Duration>,
    /// Base distribution (with --preset: default debian).
    #[arg(long, value_enum, required_unless_present_any = ["tag", "preset"])]
    pub base: Option<Base>,
    /// Root password for SSH logins.
    #[arg(
        long,
        value_name = "PW",
        conflicts_with = "ssh_key",
        required_unless_present_any = ["ssh_key", "tag", "preset"]
    )]
    pub ssh_password: Option<String>,
    /// Public key file allowed to log in as root.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// SmolVM's form: build the Dockerfile in CONTEXT into the image NAME (Docker engine).
    #[arg(
        short = 't',
        long = "tag",
        value_name = "NAME",
        conflicts_with_all = ["base", "ssh_password", "ssh_key", "name"]
    )]
    pub tag: Option<String>,
    /// Build context holding the Dockerfile (with -t; default: the current directory).
    #[arg(value_name = "CONTEXT", requires = "tag")]
    pub context: Option<PathBuf>,
    /// The Dockerfile (with -t; default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "PATH", requires = "tag")]
    pub dockerfile: Option<PathBuf>,
    /// A value for one of the Dockerfile's ARG lines (with -t; repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE", requires = "tag")]
    pub build_args: Vec<String>,
    /// Processor type to build for (with -t; default: this machine's). Another one needs
    /// QEMU user emulation registered with binfmt_misc.
    #[arg(long, value_enum, requires = "tag")]
    pub arch: Option<Arch>,
    /// The backend whose kernel ships with the image (with -t): auto (the default: this
    /// machine's),
    /// firecracker or qemu; libkrun and vz are macOS backends.
    #[arg(long, value_enum, requires = "tag")]
    pub backend: Option<BuildBackend>,
    /// The program the image starts with (with -t; default /init, SmolVM's, installed
    /// when the image has none): sandboxes of it boot with init=PATH.
    #[arg(long, value_name = "PATH", requires = "tag")]
    pub init: Option<String>,
    /// Image name (default: alpine-ssh, alpine-ssh-key, debian-ssh or debian-ssh-key).
    #[arg(long)]
    pub name: Option<String>,
    /// Root file system size in MiB (default: 512 alpine, 2048 debian, the preset's disk;
    /// `--size-mb` is SmolVM's spelling).
    #[arg(long, visible_alias = "size-mb", value_name = "MB", value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub size: Option<u64>,
    /// Kernel to ship with the image.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Where images are cached (default: $SMOLVM_IMAGE_DIR or ~/.smolvm/images;
    /// `--image-dir` is SmolVM's spelling).
    #[arg(long, visible_alias = "image-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build engine: docker when its daemon answers, else debootstrap (Debian only).
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: Engine,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}
