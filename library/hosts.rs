//! /etc/hosts parsing and lookup the way glibc's files backend reads it.
//! (Filled in by the hosts_pin work.)
