//! Dashboard fixtures shared by tests/tui.rs and benches/tui.rs, and a real worker to
//! drive (tests/tui.rs, tests/boot.rs).

use smolvm::core::host::{DevAccess, Host, KvmKind};
use smolvm::sys::env::Env;
use smolvm::tui::app::{App, Effect, Input, Msg, StartImage, StartSpec, TaskState};
use smolvm::tui::worker::Workers;
use tokio::sync::mpsc::UnboundedReceiver;

/// The host the dashboard fixtures show: PVM with `/dev/kvm` open, QEMU installed, no
/// Firecracker, running as root.
pub fn pvm_host() -> Host {
    Host {
        kvm: KvmKind::Pvm,
        dev_kvm: DevAccess::ReadWrite,
        qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        firecracker: None,
        root: true,
        ..Host::default()
    }
}

/// A start of preset `preset` named `name` with `memory_mib` and one vCPU; no mounts, no
/// policy, no SSH port, no attach; warm as the preset's `warm` key says (the form's default).
pub fn preset_start(preset: &str, name: &str, memory_mib: u32) -> StartSpec {
    StartSpec {
        image: StartImage::Preset(preset.into()),
        name: Some(name.into()),
        memory_mib,
        cpus: 1,
        disk_mib: None,
        mounts: vec![],
        writable_mounts: false,
        internet: Default::default(),
        publish_ssh: false,
        attach: false,
        warm: smolvm::core::warm::Ask::Preset,
    }
}

/// A real dashboard worker over an environment, and the channel its answers come on.
pub struct RealWorker {
    pub workers: Workers,
    pub rx: UnboundedReceiver<Msg>,
}

impl RealWorker {
    /// Run `body` with a worker over `env` on a runtime of its own; what it returns.
    pub fn block_on<T, F: std::future::Future<Output = T>>(
        env: &Env,
        body: impl FnOnce(RealWorker) -> F,
    ) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let ctx = smolvm::core::context::Context::local(env);
            let workers = Workers::new(tx, ctx);
            body(RealWorker { workers, rx }).await
        })
    }

    pub fn run(&mut self, fx: Effect) {
        self.workers.run(fx);
    }

    /// When a wait for the worker's answers fails: `secs` from now.
    pub fn deadline(secs: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(secs)
    }

    /// The worker's next answer; the test fails if none comes by `deadline`.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Msg {
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .expect("worker answered")
            .unwrap()
    }

    /// Give `a` the worker's answers until its first task is no longer running (within
    /// `secs`).
    pub async fn finish_first_task(&mut self, a: &mut App, secs: u64) {
        let deadline = RealWorker::deadline(secs);
        while a.data.tasks[0].state == TaskState::Running {
            let msg = self.next_before(deadline).await;
            a.update(Input::Msg(msg));
        }
    }
}
