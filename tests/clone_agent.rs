//! The clone agent's own tests (`guest/agent.rs`: built on its own by `build.rs` for the
//! guest, and compiled here as a module so its `#[cfg(test)]` tests run on the host).

#[allow(dead_code)]
#[path = "../guest/agent.rs"]
mod agent;
