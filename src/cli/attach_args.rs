//! `sandbox create`'s network attachment flags (SmolVM's `--network nat|bridge`, `--bridge`,
//! `--yes`; smolvm's `--guest-ip`, `--guest-gateway`) and what they ask of core.

use clap::{Args, ValueEnum};

use crate::core::error::{Error, ErrorCode, Result};
use crate::core::start::bridged::GuestAddress;

/// `--network`: SmolVM's two attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum NetworkMode {
    /// SmolVM's private network with NAT, port forwarding and egress policies.
    #[default]
    Nat,
    /// A TAP on an existing host bridge: the guest is a machine on that network.
    Bridge,
}

#[derive(Debug, Args, Clone, Default)]
pub struct AttachFlags {
    /// Network mode: nat (default, private network) or bridge (connect to a host bridge).
    #[arg(
        long = "network",
        value_enum,
        default_value = "nat",
        value_name = "MODE"
    )]
    pub network: NetworkMode,
    /// Linux bridge to attach to (required with --network bridge; it must pass 'smolvm
    /// bridge check').
    #[arg(long, value_name = "BRIDGE")]
    pub bridge: Option<String>,
    /// The bridged guest's static address on the bridge's network, ADDRESS/PREFIX
    /// (required with --network bridge: smolvm reaches its guests over SSH).
    #[arg(long, value_name = "ADDRESS/PREFIX")]
    pub guest_ip: Option<String>,
    /// The bridged guest's default gateway (none by default).
    #[arg(long, value_name = "ADDRESS", requires = "guest_ip")]
    pub guest_gateway: Option<String>,
    /// SmolVM's confirmation of a macOS image preparation; nothing here asks one.
    #[arg(long)]
    pub yes: bool,
}

impl AttachFlags {
    /// Whether any attachment flag was given.
    pub fn asked(&self) -> bool {
        self.network == NetworkMode::Bridge || self.bridge.is_some() || self.guest_ip.is_some()
    }

    /// The bridge and the guest's address, as SmolVM's `_apply_network_attachment` checks
    /// the pair (its `invalid_input`).
    pub fn attachment(&self) -> Result<(Option<String>, Option<GuestAddress>)> {
        let invalid = |m: &str| Error::new(ErrorCode::InvalidInput, m);
        match (self.network, &self.bridge) {
            (NetworkMode::Nat, Some(_)) => Err(invalid(
                "--bridge requires --network bridge; drop --bridge or pass --network bridge.",
            )),
            (NetworkMode::Nat, None) if self.guest_ip.is_some() => Err(invalid(
                "--guest-ip is the address of a bridged guest; pass --network bridge --bridge NAME, or drop --guest-ip.",
            )),
            (NetworkMode::Nat, None) => Ok((None, None)),
            (NetworkMode::Bridge, None) => Err(invalid(
                "--network bridge requires --bridge <bridge_name>; e.g. --network bridge --bridge br10.",
            )),
            (NetworkMode::Bridge, Some(b)) => {
                let address = self
                    .guest_ip
                    .as_deref()
                    .map(|ip| GuestAddress::parse(ip, self.guest_gateway.as_deref()))
                    .transpose()?;
                Ok((Some(b.trim().to_string()), address))
            }
        }
    }
}
