//! corosync's link state as `corosync-cfgtool -s` and `corosync-cfgtool -n` print it.
//!
//! Formats (real samples of Debian corosync 3.1.7 in `tests/fixtures/cfgtool-3.1.7-real/`):
//!
//! `-s` (corosync 3, knet): `Local node ID N, transport knet`, then per link `LINK ID N udp`,
//! `\taddr\t= ADDR`, `\tstatus:` and one `\t\tnodeid: <padded N>:\tSTATE` per node
//! (`localhost`, `connected`, `disconnected`). corosync 2 (totem rings) prints `RING ID N`,
//! `\tid\t= ADDR`, `\tstatus\t= ring N active with no faults` (or `FAULTY`).
//!
//! `-n` (corosync 3.1): the header line, then per other node `nodeid: N reachable` and per link
//! `   LINK: N udp (LOCAL->PEER) enabled connected mtu: M` (`connected` absent when it is not).

use serde_json::{json, Value};

/// One node's state on one link, from `-s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkNode {
    pub nodeid: u32,
    /// As printed: `localhost`, `connected`, `disconnected`, ...
    pub state: String,
}

impl LinkNode {
    pub fn local(&self) -> bool {
        self.state == "localhost"
    }
    /// This node itself, or a peer the link reaches.
    pub fn connected(&self) -> bool {
        self.state == "localhost" || self.state == "connected"
    }
}

/// One link (corosync 3) or ring (corosync 2), from `-s`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub id: u32,
    pub transport: Option<String>,
    /// This node's address on the link.
    pub addr: Option<String>,
    /// corosync 2: the ring's status text (`ring 0 active with no faults`).
    pub status: Option<String>,
    pub nodes: Vec<LinkNode>,
}

impl Link {
    /// corosync 2 ring: no fault reported.
    pub fn ring_ok(&self) -> Option<bool> {
        self.status
            .as_deref()
            .map(|s| !s.to_ascii_uppercase().contains("FAULTY"))
    }
}

/// The whole `-s` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkStatus {
    pub local_nodeid: Option<u32>,
    pub transport: Option<String>,
    pub links: Vec<Link>,
}

/// `Local node ID N, transport T` (corosync 3) or `Local node ID N` (corosync 2).
fn header(line: &str) -> Option<(u32, Option<String>)> {
    let rest = line.trim().strip_prefix("Local node ID ")?;
    let (id, tr) = match rest.split_once(',') {
        Some((id, tr)) => (id, tr.trim().strip_prefix("transport ").map(str::trim)),
        None => (rest, None),
    };
    Some((id.trim().parse().ok()?, tr.map(str::to_string)))
}

/// Parses `corosync-cfgtool -s`. Unknown lines are skipped; an output with no header and no
/// link is `None` (an error message, or another tool's output).
pub fn parse_status(text: &str) -> Option<LinkStatus> {
    let mut st = LinkStatus::default();
    let mut seen = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some((id, tr)) = header(t) {
            st.local_nodeid = Some(id);
            st.transport = tr;
            seen = true;
        } else if let Some(rest) = t
            .strip_prefix("LINK ID ")
            .or_else(|| t.strip_prefix("RING ID "))
        {
            let mut w = rest.split_whitespace();
            let Some(id) = w.next().and_then(|x| x.parse().ok()) else {
                continue;
            };
            st.links.push(Link {
                id,
                transport: w.next().map(str::to_string),
                ..Link::default()
            });
            seen = true;
        } else if let Some(link) = st.links.last_mut() {
            if let Some(rest) = t.strip_prefix("nodeid:") {
                // `nodeid:          2:\tconnected`
                let Some((id, state)) = rest.split_once(':') else {
                    continue;
                };
                if let Ok(nodeid) = id.trim().parse() {
                    link.nodes.push(LinkNode {
                        nodeid,
                        state: state.trim().to_string(),
                    });
                }
            } else if let Some((k, v)) = t.split_once('=') {
                let v = v.trim().to_string();
                match k.trim() {
                    "addr" | "id" => link.addr = Some(v),
                    "status" => link.status = Some(v),
                    _ => {}
                }
            }
        }
    }
    seen.then_some(st)
}

/// One link to one peer, from `-n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerLink {
    pub id: u32,
    pub transport: Option<String>,
    pub local_addr: Option<String>,
    pub peer_addr: Option<String>,
    pub enabled: bool,
    pub connected: bool,
    pub mtu: Option<u32>,
}

/// One other node, from `-n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    pub nodeid: u32,
    pub reachable: bool,
    pub links: Vec<PeerLink>,
}

/// Parses `corosync-cfgtool -n`: the other nodes this node knows, and their links.
pub fn parse_nodes(text: &str) -> Option<(Option<u32>, Vec<Peer>)> {
    let mut local = None;
    let mut peers: Vec<Peer> = Vec::new();
    let mut seen = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some((id, _)) = header(t) {
            local = Some(id);
            seen = true;
        } else if let Some(rest) = t.strip_prefix("nodeid:") {
            let mut w = rest.split_whitespace();
            let Some(nodeid) = w.next().and_then(|x| x.parse().ok()) else {
                continue;
            };
            peers.push(Peer {
                nodeid,
                reachable: w.next() == Some("reachable"),
                links: Vec::new(),
            });
            seen = true;
        } else if let (Some(rest), Some(peer)) = (t.strip_prefix("LINK:"), peers.last_mut()) {
            let mut w = rest.split_whitespace();
            let Some(id) = w.next().and_then(|x| x.parse().ok()) else {
                continue;
            };
            let mut l = PeerLink {
                id,
                ..PeerLink::default()
            };
            let mut words: Vec<&str> = w.collect();
            if let Some(first) = words.first().filter(|x| !x.starts_with('(')) {
                l.transport = Some(first.to_string());
                words.remove(0);
            }
            let mut mtu_next = false;
            for word in words {
                if let Some(pair) = word.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
                    if let Some((a, b)) = pair.split_once("->") {
                        l.local_addr = Some(a.to_string());
                        l.peer_addr = Some(b.to_string());
                    }
                } else if mtu_next {
                    l.mtu = word.parse().ok();
                    mtu_next = false;
                } else {
                    match word {
                        "enabled" => l.enabled = true,
                        "connected" => l.connected = true,
                        "mtu:" => mtu_next = true,
                        _ => {}
                    }
                }
            }
            peer.links.push(l);
        }
    }
    seen.then_some((local, peers))
}

/// The link facts `pvecm_cluster` reports: per link, this node's address and each node's
/// state, with the peer's address on that link from `-n` where known.
pub fn facts(st: &LinkStatus, peers: &[Peer]) -> Value {
    let links: Vec<Value> = st
        .links
        .iter()
        .map(|l| {
            let nodes: Vec<Value> = l
                .nodes
                .iter()
                .map(|n| {
                    let pl = peers
                        .iter()
                        .find(|p| p.nodeid == n.nodeid)
                        .and_then(|p| p.links.iter().find(|x| x.id == l.id));
                    json!({
                        "nodeid": n.nodeid,
                        "state": n.state,
                        "local": n.local(),
                        "connected": n.connected(),
                        "addr": if n.local() { l.addr.clone() } else { pl.and_then(|x| x.peer_addr.clone()) },
                        "mtu": pl.and_then(|x| x.mtu),
                    })
                })
                .collect();
            json!({
                "link": l.id,
                "transport": l.transport,
                "addr": l.addr,
                "status": l.status,
                "ok": l.ring_ok(),
                "nodes": nodes,
            })
        })
        .collect();
    Value::Array(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($p:expr) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/cfgtool-3.1.7-real/",
                $p
            ))
        };
    }

    fn states(st: &LinkStatus) -> Vec<(u32, Vec<(u32, &str)>)> {
        st.links
            .iter()
            .map(|l| {
                (
                    l.id,
                    l.nodes
                        .iter()
                        .map(|n| (n.nodeid, n.state.as_str()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn real_status_two_links() {
        let st = parse_status(fixture!("s-two-links-up.txt")).unwrap();
        assert_eq!(st.local_nodeid, Some(1));
        assert_eq!(st.transport.as_deref(), Some("knet"));
        assert_eq!(
            states(&st),
            vec![
                (0, vec![(1, "localhost"), (2, "connected")]),
                (1, vec![(1, "localhost"), (2, "connected")])
            ]
        );
        assert_eq!(st.links[0].addr.as_deref(), Some("10.98.0.1"));
        assert_eq!(st.links[1].addr.as_deref(), Some("10.98.1.1"));
        assert_eq!(st.links[1].transport.as_deref(), Some("udp"));
        let st2 = parse_status(fixture!("s-two-links-up-node2.txt")).unwrap();
        assert_eq!(st2.local_nodeid, Some(2));
        assert!(st2.links[0].nodes[1].local());
    }

    #[test]
    fn real_status_link0_cut_and_all_cut() {
        let st = parse_status(fixture!("s-link0-down.txt")).unwrap();
        assert_eq!(
            states(&st),
            vec![
                (0, vec![(1, "localhost"), (2, "disconnected")]),
                (1, vec![(1, "localhost"), (2, "connected")])
            ]
        );
        assert!(!st.links[0].nodes[1].connected());
        assert!(st.links[1].nodes[1].connected());
        let st = parse_status(fixture!("s-all-links-down.txt")).unwrap();
        assert!(st.links.iter().all(|l| !l.nodes[1].connected()));
    }

    #[test]
    fn real_nodes_output() {
        let (local, peers) = parse_nodes(fixture!("n-two-links-up.txt")).unwrap();
        assert_eq!(local, Some(1));
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].nodeid, 2);
        assert!(peers[0].reachable);
        assert_eq!(
            peers[0].links[0],
            PeerLink {
                id: 0,
                transport: Some("udp".into()),
                local_addr: Some("10.98.0.1".into()),
                peer_addr: Some("10.98.0.2".into()),
                enabled: true,
                connected: true,
                mtu: Some(1397),
            }
        );
        let (_, peers) = parse_nodes(fixture!("n-link0-down.txt")).unwrap();
        assert!(!peers[0].links[0].connected && peers[0].links[0].enabled);
        assert!(peers[0].links[1].connected);
        let (local, peers) = parse_nodes(fixture!("n-all-links-down.txt")).unwrap();
        assert_eq!(local, Some(1));
        assert!(peers.is_empty());
    }

    #[test]
    fn facts_join_both_outputs() {
        let st = parse_status(fixture!("s-link0-down.txt")).unwrap();
        let (_, peers) = parse_nodes(fixture!("n-link0-down.txt")).unwrap();
        let f = facts(&st, &peers);
        assert_eq!(f[0]["link"], 0);
        assert_eq!(f[0]["nodes"][0]["addr"], "10.98.0.1");
        assert_eq!(f[0]["nodes"][0]["local"], true);
        assert_eq!(f[0]["nodes"][1]["addr"], "10.98.0.2");
        assert_eq!(f[0]["nodes"][1]["connected"], false);
        assert_eq!(f[1]["nodes"][1]["connected"], true);
        assert_eq!(f[1]["nodes"][1]["mtu"], 1397);
    }

    #[test]
    fn corosync2_ring_format() {
        // The layout corosync 1/2 print for totem rings (`RING ID`, `id`, `status`), as in a
        // published sample; the FAULTY line is constructed (sources say only that a failed
        // ring's status shows FAULTY).
        let text = "Printing ring status.\nLocal node ID 303938909\nRING ID 0\n\tid\t= 10.0.1.1\n\tstatus\t= ring 0 active with no faults\nRING ID 1\n\tid\t= 192.168.42.1\n\tstatus\t= Marking ringid 1 interface 192.168.42.1 FAULTY\n";
        let st = parse_status(text).unwrap();
        assert_eq!(st.local_nodeid, Some(303938909));
        assert_eq!(st.links.len(), 2);
        assert_eq!(st.links[0].addr.as_deref(), Some("10.0.1.1"));
        assert_eq!(st.links[0].ring_ok(), Some(true));
        assert_eq!(st.links[1].ring_ok(), Some(false));
    }

    #[test]
    fn errors_and_garbage_are_none_and_never_panic() {
        assert_eq!(
            parse_status("Could not initialize corosync configuration API error 2\n"),
            None
        );
        assert_eq!(
            parse_nodes("Could not initialize corosync configuration API error 2\n"),
            None
        );
        let base = fixture!("s-two-links-up.txt");
        let mut rng = crate::testing::Rng::new(7);
        for _ in 0..500 {
            let cut = rng.below(base.len());
            let mut s: String = base.chars().take(cut).collect();
            s.push_str(rng.pick(&["nodeid:", "LINK ID x", "=", ":", "\n", "LINK: 9 (", "mtu:"]));
            let _ = parse_status(&s);
            let _ = parse_nodes(&s);
        }
    }
}
