//! Key rotation under load on a real `phalanx dev` (two workers in one
//! cluster, the first also the gatekeeper): a client keeps making encrypted
//! calls to an agent that reads a sealed secret, through both workers'
//! gateways, while governance rotates the master key and then the cluster's
//! key alone. Not one call may fail; afterwards the secret is sealed under
//! the newest key, the old epochs are retired on chain, a call sealed to a
//! retired key is refused with a reason, and no worker's sealed vault holds
//! an old key. An agent-only rotation interrupted by SIGKILL of the whole
//! dev network completes after the restart with nothing lost.

mod common;

use common::{DevNode, free_port, phalanx};
use phalanx_keys::call::{ENVELOPE_CONTENT_TYPE, SealedRequest, SealedResponse};
use phalanx_primitives::Hash;
use phalanx_rpc::PhalanxClient;
use phalanx_state::modules::agents::secret_epoch;
use phalanx_worker::tee::Platform;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PLANTED: &str = "rotation-secret-91c2";

/// What the client saw.
#[derive(Default, Debug)]
struct Load {
    calls: u64,
    failures: Vec<String>,
    epochs: std::collections::BTreeSet<u64>,
}

/// One encrypted call sealed to the agent's newest key as the node reports it.
async fn encrypted_call(
    rpc: &jsonrpsee::http_client::HttpClient,
    http: &reqwest::Client,
    gateway: &str,
    id: Hash,
) -> Result<u64, String> {
    let agent = rpc.agents_get(id).await.map_err(|e| format!("rpc: {e}"))?.ok_or("no agent")?;
    let key = agent.agent["keys"].as_array().and_then(|k| k.last()).cloned().ok_or("no key")?;
    let epoch = key["epoch"].as_u64().ok_or("epoch")?;
    let public: [u8; 32] = hex::decode(key["public"].as_str().unwrap_or("").trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("public key")?;
    let request = SealedRequest { method: "GET".into(), path: "/".into(), headers: vec![], body: vec![] };
    let (envelope, response_key) = request.seal(id, epoch, &public).map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{gateway}/agents/{id}"))
        .header("content-type", ENVELOPE_CONTENT_TYPE)
        .body(envelope)
        .send()
        .await
        .map_err(|e| format!("gateway: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("epoch {epoch}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    let opened = response_key.open(0, &body).map_err(|e| format!("response: {e}"))?;
    let answer = SealedResponse::decode(&opened).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer.body).to_string();
    if answer.status != 200 || text != format!("greeting: {PLANTED}") {
        return Err(format!("epoch {epoch}: sealed {}: {text}", answer.status));
    }
    Ok(epoch)
}

/// Calls in a loop, alternating gateways, until `stop`.
fn load(url: String, gateways: Vec<String>, id: Hash, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Load> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let rpc = jsonrpsee::http_client::HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(10))
                .build(&url)
                .unwrap();
            let http = reqwest::Client::new();
            let mut seen = Load::default();
            while !stop.load(Ordering::Relaxed) {
                let gateway = &gateways[seen.calls as usize % gateways.len()];
                match encrypted_call(&rpc, &http, gateway, id).await {
                    Ok(epoch) => {
                        seen.epochs.insert(epoch);
                    }
                    Err(failure) => seen.failures.push(failure),
                }
                seen.calls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    })
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(seconds), "{what} did not happen within {seconds} s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// (cluster key epochs kept, agent key epochs kept, epoch of the secret).
fn key_picture(node: &DevNode, id: &str) -> (Vec<u64>, Vec<u64>, Option<u64>) {
    let status: serde_json::Value = node.cli_json(&["keys", "status"]);
    let clusters = status["clusters"][0]["keys"].as_array().unwrap().iter().map(|k| k["epoch"].as_u64().unwrap());
    let info: serde_json::Value = node.cli_json(&["agent", "info", id]);
    let agents = info["keys"].as_array().unwrap().iter().map(|k| k["epoch"].as_u64().unwrap());
    let sealed = hex::decode(info["secrets"][0]["sealed"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    (clusters.collect(), agents.collect(), secret_epoch(&sealed))
}

#[test]
fn encrypted_calls_never_fail_while_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_with(dir.path(), free_port(), free_port(), &["--workers", "2", "--gateway-port", &port]);
    wait_until("the dev cluster forming", 90, || {
        let status: serde_json::Value = node.cli_json(&["keys", "status"]);
        status["clusters"][0]["keys"][0]["received"].as_array().is_some_and(|r| r.len() == 2)
    });

    let source = dir.path().join("greeter.js");
    std::fs::write(
        &source,
        "export default { fetch(req, env) { return new Response(`greeting: ${env.GREETING}`); } };",
    )
    .unwrap();
    let deployed: serde_json::Value = node.cli_json(&["agent", "deploy", source.to_str().unwrap(), "--from", "bob"]);
    let id_text = deployed["id"].as_str().unwrap().to_string();
    let id: Hash = id_text.parse().unwrap();
    wait_until("the secret being set", 30, || {
        let secret = format!("GREETING={PLANTED}");
        let args =
            ["agent", "secrets", "set", id_text.as_str(), secret.as_str(), "--from", "bob", "--rpc", &node.url()];
        phalanx().args(args).output().unwrap().status.success()
    });
    let gateways: Vec<String> = (0..2).map(|i| format!("http://127.0.0.1:{}", gateway_port + i)).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rpc = node.client();
    let http = reqwest::Client::new();
    wait_until("the secret reaching both workers", 30, || {
        gateways.iter().all(|g| runtime.block_on(encrypted_call(&rpc, &http, g, id)).is_ok())
    });
    let (clusters, agents, secret) = key_picture(&node, &id_text);
    assert_eq!((clusters.len(), agents.len()), (1, 1));
    assert_eq!(secret, agents.last().copied());
    // Sealed to the key about to be rotated away, for later.
    let first_epoch = agents[0];
    let info = runtime.block_on(rpc.agents_get(id)).unwrap().unwrap();
    let first_public: [u8; 32] =
        hex::decode(info.agent["keys"][0]["public"].as_str().unwrap().trim_start_matches("0x"))
            .unwrap()
            .try_into()
            .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let client = load(node.url(), gateways.clone(), id, stop.clone());
    std::thread::sleep(Duration::from_secs(2));

    // A master rotation, then the cluster's key alone (named by the cluster's name).
    let mut last = (clusters, agents);
    for scope in [vec!["master"], vec!["cluster", "dev"]] {
        let mut args = vec!["keys", "rotate", "--scope"];
        args.extend(&scope);
        args.extend(["--from", "alice"]);
        let _: serde_json::Value = node.cli_json(&args);
        wait_until(&format!("{scope:?} rotation settling"), 180, || {
            let (clusters, agents, secret) = key_picture(&node, &id_text);
            let settled = clusters.len() == 1
                && agents.len() == 1
                && clusters[0] > last.0[0]
                && agents[0] > last.1[0]
                && secret == Some(agents[0]);
            if settled {
                last = (clusters, agents);
            }
            settled
        });
    }
    // Calls go on a little after the last retirement, then the client stops.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();
    eprintln!("{} encrypted calls, sealed to agent key epochs {:?}", seen.calls, seen.epochs);
    assert!(seen.failures.is_empty(), "{} of {} calls failed: {:?}", seen.failures.len(), seen.calls, seen.failures);
    assert!(seen.calls >= 30, "the client kept calling: {}", seen.calls);
    assert!(seen.epochs.len() >= 3, "calls were sealed to the keys of every epoch: {:?}", seen.epochs);

    // A call sealed to the retired first key is refused with the reason.
    let request = SealedRequest { method: "GET".into(), path: "/".into(), headers: vec![], body: vec![] };
    let (envelope, _) = request.seal(id, first_epoch, &first_public).unwrap();
    let refused = reqwest::blocking::Client::new()
        .post(format!("{}/agents/{id}", gateways[0]))
        .header("content-type", ENVELOPE_CONTENT_TYPE)
        .body(envelope)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().unwrap().contains(&format!("no key of epoch {first_epoch}")));

    // The owner rotates the agent's key alone, and the whole dev network
    // (gatekeeper and workers) is killed with SIGKILL half-way: after the new
    // key is published, before the old one is retired. Restarted from its
    // data, the rotation completes and the secret still opens.
    let _: serde_json::Value = node.cli_json(&["keys", "rotate", "--scope", "agent", &id_text, "--from", "bob"]);
    wait_until("the agent's new key being published", 60, || key_picture(&node, &id_text).1.len() == 2);
    let (rpc_port, p2p_port) = (node.rpc_port, node.p2p_port);
    node.kill_9();
    let node = DevNode::start_with(dir.path(), rpc_port, p2p_port, &["--workers", "2", "--gateway-port", &port]);
    wait_until("the agent rotation completing after the crash", 180, || {
        let (clusters, agents, secret) = key_picture(&node, &id_text);
        let settled = agents.len() == 1 && agents[0] > last.1[0] && secret == Some(agents[0]);
        if settled {
            last = (clusters, agents);
        }
        settled
    });
    let rpc = node.client();
    wait_until("both workers answering with the secret after the restart", 60, || {
        gateways.iter().all(|g| runtime.block_on(encrypted_call(&rpc, &http, g, id)).is_ok())
    });

    // Every worker's sealed vault holds only the newest cluster key; the
    // gatekeeper only the current master key.
    let status: serde_json::Value = node.cli_json(&["keys", "status"]);
    let cluster: Hash = status["clusters"][0]["id"].as_str().unwrap().parse().unwrap();
    let current_master = status["epochs"]["current"]["epoch"].as_u64().unwrap();
    for index in 0..2 {
        let worker_dir = dir.path().join("workers").join(format!("worker-{index}"));
        let platform = phalanx_worker::tee::sim::SimPlatform::new(worker_dir.join("sim-sealing.key"));
        let sealer = phalanx_worker::seal::Sealer::new(platform.sealing_key().unwrap());
        let vault_path = worker_dir.join(phalanx_worker::runtime::VAULT_FILE);
        let vault = phalanx_worker::vault::Vault::open(&sealer, &vault_path).unwrap();
        assert_eq!(vault.cluster_epochs(), vec![(cluster, last.0[0])], "worker {index} destroyed old cluster keys");
        if index == 0 {
            assert_eq!(vault.epochs(), vec![current_master], "the gatekeeper destroyed old master keys");
        }
    }
}
