//! pve2node's shared core: the Ansible module protocol, safe file editing, command running,
//! and parsers for the files and outputs of Proxmox VE clustering. No module logic lives here.

pub mod edit;
pub mod hosts;
pub mod mounts;
pub mod protocol;
pub mod pve;
pub mod run;
#[doc(hidden)]
pub mod testing;
pub mod wait;

/// The reason part of an I/O error, without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
