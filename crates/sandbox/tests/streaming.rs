//! Streamed bodies, end to end over real sockets: an agent relays an
//! upstream server's token stream (transforming it on the way) and the
//! caller receives the first chunk *before* the upstream has sent the
//! second; an agent's own TransformStream output arrives the same way;
//! `ctx.waitUntil` work runs after the response; a caller that goes away
//! ends the call without harming the instance.

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use phalanx_sandbox::{FetchPolicy, HttpRequest, Limits, ResponseHead, ResponsePart, Sandbox, SandboxError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// The upstream: `/tokens` sends one event, waits until the test releases
/// it, then sends the second; `/gate` answers once released; `/after`
/// counts hits.
struct Upstream {
    release: Notify,
    after: AtomicUsize,
}

async fn tokens(State(upstream): State<Arc<Upstream>>) -> axum::response::Response {
    let chunks = futures::stream::unfold(0, move |step| {
        let upstream = upstream.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::convert::Infallible>("data: one\n\n"), 1)),
                1 => {
                    upstream.release.notified().await;
                    Some((Ok("data: two\n\n"), 2))
                }
                _ => None,
            }
        }
    });
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(chunks))
        .unwrap()
}

async fn start() -> (Arc<Upstream>, String) {
    let upstream = Arc::new(Upstream { release: Notify::new(), after: AtomicUsize::new(0) });
    let app = axum::Router::new()
        .route("/tokens", get(tokens))
        .route(
            "/gate",
            get(|State(u): State<Arc<Upstream>>| async move {
                u.release.notified().await;
                "open"
            }),
        )
        .route(
            "/after",
            get(|State(u): State<Arc<Upstream>>| async move {
                u.after.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (upstream, base)
}

async fn agent(source: &str) -> Sandbox {
    let limits = Limits { wall_time_max: Duration::from_secs(5), ..Limits::default() };
    let policy = FetchPolicy { allow_private_addresses: true, ..FetchPolicy::default() };
    let mut sandbox = Sandbox::with_policy(limits, policy).await.unwrap();
    sandbox.load("agent.js", source, "fetch").await.unwrap();
    sandbox
}

fn get_request(base: &str) -> HttpRequest {
    HttpRequest {
        url: "https://agent.example/".into(),
        method: "GET".into(),
        headers: vec![("x-upstream".into(), base.into())],
        body: None,
    }
}

/// Receives the head and the first chunk, then releases the upstream and
/// collects the rest. Only a streaming sandbox can deliver the first chunk
/// before the release; a buffering one would run into its wall time.
async fn first_chunk_then_release(
    mut parts: mpsc::Receiver<ResponsePart>,
    upstream: &Upstream,
) -> (ResponseHead, Vec<u8>, Vec<u8>) {
    let Some(ResponsePart::Head(head)) = parts.recv().await else { panic!("no head") };
    let Some(ResponsePart::Body(first)) = parts.recv().await else { panic!("no first chunk") };
    upstream.release.notify_one();
    let mut rest = Vec::new();
    while let Some(part) = parts.recv().await {
        let ResponsePart::Body(chunk) = part else { panic!("a second head") };
        rest.extend_from_slice(&chunk);
    }
    (head, first, rest)
}

#[tokio::test]
async fn relayed_upstream_stream_arrives_chunk_by_chunk() {
    let (upstream, base) = start().await;
    let mut sandbox = agent(
        r#"export default {
            async fetch(request) {
                const upstream = await fetch(request.headers.get("x-upstream") + "/tokens");
                const shout = new TransformStream({ transform(text, c) { c.enqueue(text.toUpperCase()); } });
                const body = upstream.body.pipeThrough(new TextDecoderStream()).pipeThrough(shout).pipeThrough(new TextEncoderStream());
                return new Response(body, { headers: { "content-type": upstream.headers.get("content-type") } });
            },
        };"#,
    )
    .await;
    let (sender, parts) = mpsc::channel(4);
    let ((result, _), (head, first, rest)) =
        tokio::join!(sandbox.serve(get_request(&base), &[], sender), first_chunk_then_release(parts, &upstream));
    assert_eq!(result, Ok(()));
    assert_eq!(head.status, 200);
    assert_eq!(head.headers, vec![("content-type".to_string(), "text/event-stream".to_string())]);
    assert_eq!((first.as_slice(), rest.as_slice()), (&b"DATA: ONE\n\n"[..], &b"DATA: TWO\n\n"[..]));
}

#[tokio::test]
async fn agent_written_stream_arrives_while_the_agent_still_works() {
    let (upstream, base) = start().await;
    let mut sandbox = agent(
        r#"export default {
            async fetch(request, env, ctx) {
                const { readable, writable } = new TransformStream();
                const writer = writable.getWriter();
                const encoder = new TextEncoder();
                (async () => {
                    await writer.write(encoder.encode("first;"));
                    const gate = await fetch(request.headers.get("x-upstream") + "/gate");
                    await writer.write(encoder.encode(`then ${await gate.text()};`));
                    await writer.close();
                })();
                ctx.waitUntil(fetch(request.headers.get("x-upstream") + "/after").then(() => console.log("after done")));
                return new Response(readable, { status: 202 });
            },
        };"#,
    )
    .await;
    let (sender, parts) = mpsc::channel(4);
    let ((result, logs), (head, first, rest)) =
        tokio::join!(sandbox.serve(get_request(&base), &[], sender), first_chunk_then_release(parts, &upstream));
    assert_eq!(result, Ok(()));
    assert_eq!(head.status, 202);
    assert_eq!((first.as_slice(), rest.as_slice()), (&b"first;"[..], &b"then open;"[..]));
    assert_eq!(upstream.after.load(Ordering::SeqCst), 1, "waitUntil work ran before the call ended");
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["after done"]);
}

#[tokio::test]
async fn a_caller_that_goes_away_ends_the_stream_not_the_instance() {
    let mut sandbox = agent(
        r#"export default {
            async fetch(request) {
                if (new URL(request.url).pathname === "/once") return new Response("ok");
                let n = 0;
                return new Response(new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 1)); c.enqueue(new TextEncoder().encode(`${n++},`)); } }));
            },
        };"#,
    )
    .await;
    let (sender, mut parts) = mpsc::channel(1);
    let reader = async move {
        let _head = parts.recv().await;
        let _first = parts.recv().await;
        drop(parts);
    };
    let ((result, _), ()) = tokio::join!(sandbox.serve(get_request("unused"), &[], sender), reader);
    assert_eq!(result, Err(SandboxError::ClientGone));
    assert!(!sandbox.is_poisoned());
    let mut once = get_request("unused");
    once.url = "https://agent.example/once".into();
    let fetched = sandbox.fetch(once, vec![]).await.unwrap();
    assert_eq!(fetched.response.body, b"ok");
}
