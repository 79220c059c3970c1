//! `smolvm image build`: the face of the builders (SmolVM's `-t NAME [CONTEXT]` Dockerfile
//! form, the `--base` images and a preset's local image), beside the other image verbs in
//! `image.rs`.

use super::args::BuildBackend;
use super::output::{self, line};
use crate::core::context::Context;
use crate::core::error::{Error, Result};
use crate::core::progress::Progress;

/// `smolvm image build`: a thin face over [`core::builder::build`](crate::core::builder::build)
/// and, for SmolVM's `-t NAME [CONTEXT]` form, `build_dockerfile`.
/// Exit codes: 0 built or cached, 1 the build failed (nothing half-built is left), 2 usage,
/// 130 stopped by a signal (what it staged removed).
pub fn build(command: &str, args: &super::args::ImageBuildArgs, cx: &Context) -> i32 {
    let env = cx.env();
    use crate::core::builder::{self, Auth, Base, BuildEvent, BuildOptions, Engine};
    use std::path::PathBuf;
    let kernel = || -> Result<PathBuf> {
        match &args.kernel {
            Some(k) => Ok(k.clone()),
            None => {
                if !args.json {
                    line("Fetching the published kernel (--kernel not given)");
                }
                builder::default_kernel(env, &cx.paths().images_root)
            }
        }
    };
    let cache_dir = cx
        .paths_with_image_dir(args.cache_dir.as_deref())
        .images_root;
    let progress = || {
        if args.json {
            Progress::none()
        } else {
            Progress::new(|e: BuildEvent| match e {
                BuildEvent::Step(_) => line(format!("  {}", e.text())),
                _ => line(e.text()),
            })
        }
    };
    let result = (|| match &args.tag {
        None if args.arch.is_some() || args.backend.is_some() || args.init.is_some() => {
            Err(Error::usage(
                "--arch, --backend and --init go with SmolVM's Dockerfile form: -t NAME CONTEXT",
            ))
        }
        None if args.preset.is_some() => {
            for p in &cx.presets().problems {
                super::output::warn(p);
            }
            let req = crate::core::preset_image::PresetBuildRequest {
                preset: args.preset.clone().unwrap_or_default(),
                base: args.base,
                engine: args.engine,
                kernel: args.kernel.clone(),
                cache_dir: cache_dir.clone(),
                size_mib: args.size,
                install_timeout: args.install_timeout,
            };
            crate::core::preset_image::build_requested(cx, &req, &progress())
        }
        Some(tag) => {
            // Before the kernel download: never replace what smolvm did not build, the
            // platform can be built for, and Docker must answer.
            builder::check_replaceable(&cache_dir, tag)?;
            let init = args
                .init
                .clone()
                .unwrap_or_else(|| builder::DEFAULT_INIT.to_string());
            builder::validate_init(&init)?;
            let arch = match args.arch {
                Some(a) => a,
                None => crate::core::images::host_arch()?,
            };
            builder::check_build_arch(arch)?;
            let vmm = build_vmm(args.backend.unwrap_or(BuildBackend::Auto), cx)?;
            let context = args.context.clone().unwrap_or_else(|| PathBuf::from("."));
            let dockerfile = args
                .dockerfile
                .as_ref()
                .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()));
            let build_args = builder::parse_build_args(&args.build_args)?;
            // SmolVM's checks of the context and the Dockerfile, then the engine's: all
            // before the kernel download.
            builder::check_dockerfile_inputs(tag, &context, dockerfile.as_deref())?;
            builder::preflight(env, Base::Alpine, Engine::Docker, &cache_dir, tag)?;
            let opts = builder::DockerfileOptions {
                name: tag.clone(),
                context: std::path::absolute(&context).unwrap_or(context),
                dockerfile,
                build_args,
                size_mib: args.size,
                kernel: match &args.kernel {
                    Some(k) => k.clone(),
                    None => {
                        if !args.json {
                            line("Fetching the published kernel (--kernel not given)");
                        }
                        builder::kernel_for(env, &cx.paths().images_root, arch, vmm)?
                    }
                },
                cache_dir: cache_dir.clone(),
                arch,
                init: init.clone(),
            };
            let mut r = builder::build_dockerfile(env, &opts, &progress())?;
            r.platform = Some(builder::BuildPlatform {
                arch: arch.as_str(),
                backend: vmm.as_str(),
                boot_args: crate::core::start::DEFAULT_BOOT_ARGS
                    .replace("init=/init", &format!("init={init}")),
                init,
            });
            Ok(r)
        }
        None => {
            let base = args
                .base
                .ok_or_else(|| Error::usage("pass --base alpine|debian (or -t NAME CONTEXT)"))?;
            let auth = match (&args.ssh_password, &args.ssh_key) {
                (Some(p), _) => Auth::Password(p.clone()),
                (None, Some(f)) => Auth::Key(builder::validate_public_key(
                    &std::fs::read_to_string(f).map_err(|e| {
                        Error::runtime(format!(
                            "cannot read SSH key {}: {}",
                            f.display(),
                            crate::core::error::io_reason(&e)
                        ))
                    })?,
                )?),
                (None, None) => return Err(Error::usage("pass --ssh-password or --ssh-key")),
            };
            let mut opts = BuildOptions {
                base,
                auth,
                name: args.name.clone(),
                size_mib: args.size,
                kernel: PathBuf::new(),
                cache_dir: cache_dir.clone(),
                engine: args.engine,
            };
            // Before the kernel download: never replace what smolvm did not build, and
            // the engine must be usable.
            builder::check_replaceable(&cache_dir, &opts.name())?;
            builder::preflight(env, opts.base, opts.engine, &cache_dir, &opts.name())?;
            opts.kernel = kernel()?;
            builder::build(env, &opts, &progress())
        }
    })();
    match result {
        Ok(r) => {
            if args.json {
                output::print_json(command, 0, Some(&r), None);
            } else {
                line(r.summary());
            }
            0
        }
        Err(e) => output::fail(command, args.json, &e),
    }
}

/// `--backend` of `image build -t`: the VMM whose kernel ships with the image (`auto`:
/// the one this machine uses); libkrun and vz boot on macOS only (exit 1, clear).
fn build_vmm(b: BuildBackend, cx: &Context) -> Result<crate::core::images::Vmm> {
    use crate::core::images::Vmm;
    match b {
        BuildBackend::Auto => Ok(cx
            .host()
            .backend(crate::core::host::Backend::Auto)
            .value),
        BuildBackend::Firecracker => Ok(Vmm::Firecracker),
        BuildBackend::Qemu => Ok(Vmm::Qemu),
        BuildBackend::Libkrun | BuildBackend::Vz => Err(Error::runtime(format!(
            "--backend {}: that backend runs on macOS only; this Linux host boots firecracker or qemu",
            if b == BuildBackend::Vz { "vz" } else { "libkrun" }
        ))
        .with_recovery("Pass --backend firecracker or --backend qemu, or leave --backend out.")),
    }
}
