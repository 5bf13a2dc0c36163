//! Parsers for Proxmox VE clustering outputs and config files of every era.

pub mod cluster_conf;
pub mod corosync_conf;
pub mod links;
pub mod pmxcfs;
pub mod qdevice;
pub mod status;
