//! Parsers for Proxmox VE clustering outputs and config files of every era.
//! (Filled in by the pvecm_cluster and cman_two_node work.)
pub mod status;
