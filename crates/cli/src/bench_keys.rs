//! `phalanx bench keys`: the envelope's cost per 1 KiB message, and what a
//! master-key rotation costs a worker with many agents.
//!
//! Baselines from the same run: ChaCha20-Poly1305 alone on the same 1 KiB
//! (the symmetric floor) and one X25519 agreement (the asymmetric floor);
//! an envelope costs about one agreement plus the AEAD plus HKDF.
//! The rotation figure derives the next epoch's cluster key and every
//! agent's key with its public key (what is published), and re-encrypts
//! one 1 KiB stored item per agent from the old agent key to the new one,
//! on every core, reporting wall time and the process's CPU time.

use chacha20poly1305::aead::{Aead, KeyInit};
use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, MasterKey, Purpose, SecretKey};
use phalanx_primitives::Hash;
use std::time::{Duration, Instant};

fn rate(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..16 {
            f();
        }
        count += 16;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// User plus system CPU time of this process (Linux `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn agent_ref(agent: Hash, epoch: u64) -> KeyRef {
    KeyRef { kind: KeyKind::Agent, id: agent, epoch }
}

pub(crate) fn run(agents: usize) -> anyhow::Result<()> {
    let payload = vec![0x5au8; 1024];
    let agent = Hash([7; 32]);
    let master = MasterKey::generate(1);
    let cluster = Hash([1; 32]);
    let key = master.cluster_key(&cluster).agent_key(&agent);
    let public = key.secret().public();
    let (sealed, _) = Envelope::seal(&public, agent_ref(agent, 1), agent, Purpose::Call, &payload)?;

    let aead = chacha20poly1305::ChaCha20Poly1305::new(&[9u8; 32].into());
    let nonce = [0u8; 12].into();
    let aead_rate = rate(|| {
        std::hint::black_box(aead.encrypt(&nonce, payload.as_slice()).expect("encrypt"));
    });
    let dh_rate = rate(|| {
        std::hint::black_box(SecretKey::generate());
    });
    let seal_rate = rate(|| {
        std::hint::black_box(
            Envelope::seal(&public, agent_ref(agent, 1), agent, Purpose::Call, &payload).expect("seal"),
        );
    });
    let open_rate = rate(|| {
        std::hint::black_box(Envelope::open(&sealed, key.secret()).expect("open"));
    });
    println!("envelope, 1 KiB payload, one core (one run, same machine):");
    println!("  ChaCha20-Poly1305 alone (baseline) {aead_rate:>10.0}/s");
    println!("  X25519 key generation              {dh_rate:>10.0}/s  (one scalar multiplication)");
    println!(
        "  envelope seal                      {seal_rate:>10.0}/s  ({:.1}x the AEAD's time)",
        aead_rate / seal_rate
    );
    println!(
        "  envelope open                      {open_rate:>10.0}/s  ({:.1}x the AEAD's time)",
        aead_rate / open_rate
    );

    // Stored data of `agents` agents under epoch 1.
    let ids: Vec<Hash> = (0..agents as u64).map(|i| phalanx_primitives::sha256(&i.to_le_bytes())).collect();
    let old_cluster = master.cluster_key(&cluster);
    let stored: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            let public = old_cluster.agent_key(id).secret().public();
            Envelope::seal(&public, agent_ref(*id, 1), *id, Purpose::State, &payload).expect("seal").0
        })
        .collect();
    let next = MasterKey::generate(2);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu_before = cpu_time();
    let started = Instant::now();
    let new_cluster = next.cluster_key(&cluster);
    let chunk = agents.div_ceil(threads).max(1);
    let published: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .zip(stored.chunks(chunk))
            .map(|(ids, items)| {
                let (old_cluster, new_cluster) = (&old_cluster, &new_cluster);
                scope.spawn(move || {
                    let mut count = 0;
                    for (id, item) in ids.iter().zip(items) {
                        let old = old_cluster.agent_key(id);
                        let new = new_cluster.agent_key(id);
                        let new_public = new.secret().public();
                        let resealed =
                            Envelope::reseal(item, old.secret(), &new_public, agent_ref(*id, 2)).expect("reseal");
                        std::hint::black_box(resealed);
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("rotation thread")).sum()
    });
    let wall = started.elapsed();
    let cpu = cpu_before.zip(cpu_time()).map(|(before, after)| after.saturating_sub(before));
    anyhow::ensure!(published == agents, "every agent rotated");
    println!(
        "master-key rotation on a worker, {agents} agents with 1 KiB of stored data each, {threads} cores: \
         new cluster and agent keys with public keys, every item re-encrypted"
    );
    println!(
        "  wall {:.2} s, CPU {}, {:.0} agents/s",
        wall.as_secs_f64(),
        cpu.map_or("unavailable".to_string(), |c| format!("{:.2} s", c.as_secs_f64())),
        agents as f64 / wall.as_secs_f64()
    );
    Ok(())
}
