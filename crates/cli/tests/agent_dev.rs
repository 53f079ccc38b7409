//! `phalanx agent dev` as an agent author uses it: the real binary serves a
//! TypeScript agent over a real socket, passes `--env` values, reloads on
//! save, and keeps serving the last good version when an edit is broken.

mod common;

use common::{free_port, phalanx};
use std::process::Stdio;
use std::time::{Duration, Instant};

const V1: &str = r#"
interface Env { GREETING: string }
export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST") {
      const body = await request.json() as { n: number };
      return Response.json({ doubled: body.n * 2 }, { status: 201 });
    }
    return new Response(`${env.GREETING}, ${url.searchParams.get("name")}! v1`, { headers: { "x-version": "1" } });
  },
};
"#;

fn get_text(client: &reqwest::blocking::Client, url: &str) -> Option<(u16, String)> {
    let response = client.get(url).send().ok()?;
    Some((response.status().as_u16(), response.text().ok()?))
}

fn wait_for(client: &reqwest::blocking::Client, url: &str, expected: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some((_, body)) = get_text(client, url)
            && body.contains(expected)
        {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never saw {expected:?} at {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serve, call, reload on change, survive a broken edit.
#[test]
fn serves_reloads_and_survives_broken_edits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.ts");
    std::fs::write(&file, V1).unwrap();
    let port = free_port();
    let mut child = phalanx()
        .args(["agent", "dev"])
        .arg(&file)
        .args(["--port", &port.to_string(), "--env", "GREETING=Hello"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}/greet?name=Ada");
    assert_eq!(wait_for(&client, &url, "v1"), "Hello, Ada! v1");
    let posted = client.post(format!("http://127.0.0.1:{port}/")).body(r#"{"n":21}"#).send().unwrap();
    assert_eq!(posted.status().as_u16(), 201);
    assert_eq!(posted.text().unwrap(), r#"{"doubled":42}"#);
    let oversized = client.post(format!("http://127.0.0.1:{port}/")).body(vec![b'x'; 2 * 1024 * 1024]).send().unwrap();
    assert_eq!(oversized.status().as_u16(), 413);

    // Save a new version: it is served without a restart.
    std::thread::sleep(Duration::from_millis(1100)); // coarse file-system timestamps
    std::fs::write(&file, V1.replace("v1", "v2")).unwrap();
    assert_eq!(wait_for(&client, &url, "v2"), "Hello, Ada! v2");

    // A broken edit is refused; the last good version keeps serving.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&file, "export default { fetch( {").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(get_text(&client, &url).unwrap(), (200, "Hello, Ada! v2".to_string()));

    // An agent that throws answers 500 with the error, and the server lives on.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&file, "export default { fetch() { throw new Error('kaput'); } };").unwrap();
    let body = wait_for(&client, &url, "kaput");
    assert!(body.contains("agent error"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}
