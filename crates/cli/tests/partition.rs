//! A network partition without a firewall: 4 validators as processes,
//! each dialing the others through a TCP relay the test controls (real
//! sockets; the validators' configs name the relays as the peers'
//! addresses). Cutting the relays between {0, 1} and {2, 3} splits the
//! validators 2/2: neither half has the 3 votes finality needs, so no block
//! is finalized and a transfer submitted meanwhile waits. Healed, they
//! finalize again, the transfer lands, and every validator holds the same
//! block at every height (no fork).

mod common;

use common::testnet::{Testnet, block_hash, height};
use common::{free_ports, run_at, until};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Forwards connections from a local port to `target` while open; cutting
/// it closes every relayed connection and refuses new ones.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (open_in, streams_in) = (open.clone(), streams.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if !open_in.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let mut kept = streams_in.lock().unwrap();
                kept.push(inbound.try_clone().unwrap());
                kept.push(outbound.try_clone().unwrap());
                drop(kept);
                let (mut a_read, mut a_write) = (inbound.try_clone().unwrap(), inbound);
                let (mut b_read, mut b_write) = (outbound.try_clone().unwrap(), outbound);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a_read, &mut b_write);
                    let _ = b_write.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut b_read, &mut a_write);
                    let _ = a_write.shutdown(Shutdown::Both);
                });
            }
        });
        Relay { port, open, streams }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_two_two_split_stops_finality_and_heals_without_a_fork() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("net");
    let base = free_ports(400);
    common::testnet::init(&dir, base, &["--validators", "4", "--gatekeepers", "0", "--workers", "0"]);

    // Validator i reaches validator j through relay (i, j).
    let mut relays = Vec::new();
    for i in 0..4u16 {
        let path = dir.join(format!("validator-{i}/config.toml"));
        let mut config: phalanx_node::service::NodeFile =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for peer in &mut config.bootstrap {
            let j = peer.address.port() - base;
            let relay = Relay::start(base + j);
            peer.address.set_port(relay.port);
            relays.push(((i, j), relay));
        }
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    }
    let _net = Testnet::up(&dir);
    let rpcs: Vec<String> = (0..4).map(|i| format!("http://127.0.0.1:{}", base + 100 + i)).collect();
    until("blocks finalized through the relays", || rpcs.iter().all(|rpc| height(rpc) >= 3));

    // Split {0, 1} | {2, 3}.
    let half = |v: u16| v / 2;
    for ((i, j), relay) in &relays {
        if half(*i) != half(*j) {
            relay.cut();
        }
    }
    // Let a block already voted on settle, then nothing more is final anywhere.
    std::thread::sleep(Duration::from_secs(3));
    let frozen: Vec<u64> = rpcs.iter().map(|rpc| height(rpc)).collect();
    let charlie = || {
        let output = run_at(&rpcs[0], &["account", "balance", "charlie", "--json"]);
        serde_json::from_slice::<phalanx_rpc::AccountInfo>(&output.stdout).unwrap().free
    };
    let before = charlie();
    let sent = run_at(&rpcs[0], &["account", "transfer", "--from", "bob", "--to", "charlie", "1", "--no-wait"]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    std::thread::sleep(Duration::from_secs(8));
    let during: Vec<u64> = rpcs.iter().map(|rpc| height(rpc)).collect();
    assert_eq!(during, frozen, "no validator finalized a block during the 2/2 split");
    assert_eq!(charlie(), before, "the transfer waits: it is not final during the split");

    // Heal: finality resumes, the transfer lands, and there is one chain.
    for (_, relay) in &relays {
        relay.heal();
    }
    let resumed = frozen.iter().max().unwrap() + 3;
    until("finality after healing", || rpcs.iter().all(|rpc| height(rpc) >= resumed));
    until("the transfer final after healing", || charlie() == before + 1_000_000_000_000);
    let top = rpcs.iter().map(|rpc| height(rpc)).min().unwrap();
    for h in 1..=top {
        let first = block_hash(&rpcs[0], h);
        for rpc in &rpcs[1..] {
            assert_eq!(block_hash(rpc, h), first, "the same block at height {h} on every validator");
        }
    }
}
