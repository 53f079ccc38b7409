//! The LLM agent example (`examples/llm-agent/agent.ts`) on a real `phalanx
//! dev`, against a local OpenAI-compatible server started here: deployed
//! from the file as the README shows, its key and base URL set as secrets,
//! called plain, encrypted and streaming. The fake server checks the bearer
//! key and records what it was sent; clear errors come back without a key,
//! with a wrong key and with a bad body; no response ever holds a key.

mod common;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{DevNode, free_port, phalanx};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const KEY: &str = "sk-planted-llm-key-4e9b71";
const WRONG_KEY: &str = "sk-wrong-llm-key-c03d58";
/// The prompt of the streamed call: the fake server holds back everything
/// after its first chunk until the test has received that chunk.
const STREAM_PROMPT: &str = "tell me a short story";

/// One request the fake server received.
#[derive(Clone, Debug)]
struct Seen {
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    /// Released by the test once the first streamed chunk reached it.
    release: Notify,
    /// Whether the streamed call's gate was opened by the test (true) or timed out (false).
    released_by_client: Mutex<Option<bool>>,
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn chunk(model: &str, content: &str) -> String {
    sse(&json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": null }],
    }))
}

/// `POST /v1/chat/completions`, in OpenAI's format.
async fn completions(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push(Seen { authorization: authorization.clone(), body: body.clone() });
    if authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        // Quotes the key it got, as some servers do: the agent must not pass it on.
        let given = authorization.unwrap_or_default().trim_start_matches("Bearer ").to_string();
        let error = json!({ "error": { "message": format!("Incorrect API key provided: {given}"), "type": "invalid_request_error" } });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let prompt = body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str());
    let Some(prompt) = prompt else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": { "message": "no messages" } }))).into_response();
    };
    let answer = format!("echo: {prompt}");
    if body["stream"] != true {
        let completion = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
        });
        return axum::Json(completion).into_response();
    }
    // Word by word ("echo:", " tell", " me"…), then a finish chunk and [DONE].
    let mut pieces: Vec<String> = Vec::new();
    for (i, word) in answer.split(' ').enumerate() {
        pieces.push(if i == 0 { word.to_string() } else { format!(" {word}") });
    }
    let gated = prompt == STREAM_PROMPT;
    let events =
        futures::stream::unfold((0usize, fake, pieces, model), move |(step, fake, pieces, model)| async move {
            let event = if step < pieces.len() {
                if step == 1 && gated {
                    let released = tokio::time::timeout(Duration::from_secs(5), fake.release.notified()).await.is_ok();
                    *fake.released_by_client.lock().unwrap() = Some(released);
                } else if step > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                chunk(&model, &pieces[step])
            } else if step == pieces.len() {
                sse(&json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] }))
            } else if step == pieces.len() + 1 {
                "data: [DONE]\n\n".to_string()
            } else {
                return None;
            };
            Some((Ok::<_, std::convert::Infallible>(event), (step + 1, fake, pieces, model)))
        });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(events))
        .unwrap()
}

/// The fake server on 127.0.0.1; returns its state and its `/v1` base URL.
fn start_fake(runtime: &tokio::runtime::Runtime) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app =
        axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions)).with_state(fake.clone());
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, base)
}

/// A CLI run, readable in failure messages.
#[derive(Debug)]
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(node: &DevNode, args: &[&str]) -> Ran {
    let output = phalanx().args(args).args(["--rpc", &node.url()]).env("RUST_BACKTRACE", "0").output().unwrap();
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    }
}

/// Retries `attempt` until `done` holds for its result (60 s at most).
fn until<T: std::fmt::Debug>(what: &str, mut attempt: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let started = Instant::now();
    loop {
        let got = attempt();
        if done(&got) {
            return got;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: last got {got:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn llm_agent_example_answers_plain_encrypted_and_streaming() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (fake, base_url) = start_fake(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let extra = ["--workers", "2", "--gateway-port", &port, "--agent-fetch-private"];
    let node = DevNode::start_with(dir.path(), free_port(), free_port(), &extra);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    // Every body the agent answered with, checked for keys at the end.
    let mut bodies: Vec<String> = Vec::new();

    // Both dev workers in the "dev" cluster holding its key (a few seconds after start).
    until(
        "the dev cluster formed",
        || node.cli_json::<Value>(&["keys", "status"]),
        |status| {
            let cluster = &status["clusters"][0];
            cluster["workers"].as_array().is_some_and(|w| w.len() == 2)
                && cluster["keys"][0]["received"].as_array().is_some_and(|r| r.len() == 2)
        },
    );

    // Deployed from the example file itself.
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/llm-agent/agent.ts");
    let deployed =
        until("deploying the example", || run(&node, &["agent", "deploy", agent, "--from", "bob", "--json"]), |o| o.ok);
    let id = serde_json::from_str::<Value>(&deployed.stdout).unwrap()["id"].as_str().unwrap().to_string();
    let url = format!("{gateway}/agents/{id}/");
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let post = |body: &str| {
        let response = http.post(&url).header("content-type", "application/json").body(body.to_string()).send();
        let response = response.unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };

    // Before any secret: a clear 500 naming the missing key (once a worker serves the agent).
    // (404 and 421 until the first worker has verified the deployment and its cluster.)
    let (status, body) = until("the agent served", || post(r#"{"prompt":"hi"}"#), |(s, _)| ![404, 421].contains(s));
    assert_eq!(status, 500, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "OPENAI_API_KEY is not set");
    bodies.push(body);
    let call = |extra: &[&str]| run(&node, &[&["agent", "call", &id, "/", "--gateway", &gateway][..], extra].concat());
    let refused = call(&["--data", r#"{"prompt":"hi"}"#]);
    assert!(!refused.ok && refused.stderr.contains("500 Internal Server Error"), "{refused:?}");
    assert!(refused.stderr.contains("OPENAI_API_KEY is not set"), "{refused:?}");
    let usage = http.get(&url).send().unwrap().text().unwrap();
    assert!(usage.contains(r#"POST / with JSON {"prompt""#), "{usage}");
    for bad in ["not json", r#"{"prompt": 42}"#, r#"{"stream": true}"#] {
        let (status, body) = post(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].as_str().unwrap().contains("prompt"), "{body}");
    }
    assert!(fake.seen.lock().unwrap().is_empty(), "nothing reached the model API yet");

    // A wrong key: the upstream's 401 comes back as a 502 naming it, and the key it quoted is redacted.
    let set = |pair: &str| {
        until("setting a secret", || run(&node, &["agent", "secrets", "set", &id, pair, "--from", "bob"]), |o| o.ok);
    };
    set(&format!("OPENAI_BASE_URL={base_url}"));
    set(&format!("OPENAI_API_KEY={WRONG_KEY}"));
    let (_, body) = until("the wrong key in use", || post(r#"{"prompt":"hi"}"#), |(s, _)| *s == 502);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["upstream_status"], 401, "{body}");
    assert_eq!(error["error"], "the model API answered 401");
    assert!(error["detail"].as_str().unwrap().contains("Incorrect API key provided: [key]"), "{body}");
    bodies.push(body);

    // The right key: plain calls through the CLI.
    set(&format!("OPENAI_API_KEY={KEY}"));
    let plain = until(
        "a plain call answering",
        || call(&["--data", r#"{"prompt":"hi"}"#]),
        |o| o.ok && o.stdout.contains("echo: hi"),
    );
    let answer: Value = serde_json::from_str(&plain.stdout).unwrap();
    assert_eq!(answer, json!({ "answer": "echo: hi", "model": "gpt-4o-mini" }));
    bodies.push(plain.stdout);
    let other = call(&["--data", r#"{"prompt":"hi there","model":"other-model"}"#]);
    assert!(other.ok, "{other:?}");
    assert_eq!(serde_json::from_str::<Value>(&other.stdout).unwrap()["model"], "other-model");
    bodies.push(other.stdout);

    // Encrypted: the prompt and the answer travel sealed.
    let encrypted = until(
        "an encrypted call answering",
        || call(&["--data", r#"{"prompt":"hi"}"#, "--encrypt"]),
        |o| o.ok && o.stdout.contains("echo: hi"),
    );
    assert_eq!(serde_json::from_str::<Value>(&encrypted.stdout).unwrap()["answer"], "echo: hi");
    bodies.push(encrypted.stdout);

    // Streaming through the gateway over plain HTTP: the first chunk arrives
    // while the fake server still holds back the rest.
    let request = json!({ "prompt": STREAM_PROMPT, "stream": true }).to_string();
    let (content_type, events, first_chunk_early) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut response =
            client.post(&url).header("content-type", "application/json").body(request).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        let mut received = String::new();
        let mut released = false;
        let mut first_chunk_early = false;
        let read = async {
            while let Some(bytes) = response.chunk().await.unwrap() {
                received.push_str(std::str::from_utf8(&bytes).unwrap());
                if !released && received.contains(r#""content":"echo:""#) {
                    // Nothing after the first word has been sent yet.
                    first_chunk_early = !received.contains(" tell");
                    fake.release.notify_one();
                    released = true;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("the stream ends");
        (content_type, received, first_chunk_early)
    });
    assert_eq!(content_type, "text/event-stream");
    assert!(first_chunk_early, "the first chunk reached the client alone: {events}");
    assert_eq!(
        *fake.released_by_client.lock().unwrap(),
        Some(true),
        "the first chunk reached the client before the model API sent the second"
    );
    let data: Vec<&str> = events.split("\n\n").filter_map(|e| e.trim().strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{events}");
    let streamed: String = data
        .iter()
        .filter(|d| **d != "[DONE]")
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(streamed, format!("echo: {STREAM_PROMPT}"));
    assert!(data.len() >= 6, "several chunks: {events}");
    bodies.push(events);

    // What the model API saw: the right bearer key (and the wrong one before it), the default model, the prompts.
    let seen = fake.seen.lock().unwrap().clone();
    let with = |key: &str| seen.iter().filter(|s| s.authorization.as_deref() == Some(&format!("Bearer {key}"))).count();
    assert!(with(WRONG_KEY) >= 1, "{seen:?}");
    assert!(with(KEY) >= 4, "{seen:?}");
    assert_eq!(with(KEY) + with(WRONG_KEY), seen.len(), "every request carried a bearer key: {seen:?}");
    let good: Vec<&Seen> =
        seen.iter().filter(|s| s.authorization.as_deref() == Some(&format!("Bearer {KEY}"))).collect();
    assert_eq!(good[0].body["model"], "gpt-4o-mini");
    assert_eq!(good[0].body["messages"], json!([{ "role": "user", "content": "hi" }]));
    assert_eq!(good[0].body["stream"], false);
    assert!(good.iter().any(|s| s.body["stream"] == true && s.body["messages"][0]["content"] == STREAM_PROMPT));

    // No answer ever held a key.
    for body in &bodies {
        assert!(!body.contains(KEY) && !body.contains(WRONG_KEY), "a response holds a key: {body}");
    }
    drop(node);
}
