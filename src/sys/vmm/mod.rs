//! VMM control: QEMU's QMP and Firecracker's HTTP API, both over Unix sockets.

pub mod firecracker;
pub mod qmp;
