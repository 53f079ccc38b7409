//! Real third-party crypto code, unchanged: jose 6 (installed from npm at
//! test time, bundled by `tests/npm/build.sh` from `agents/jose-app.ts`)
//! runs on the sandbox's `crypto.subtle` and must answer exactly as it does
//! on Node's. With the fixed keys, claims and times of
//! `tests/npm/jose-fixture.json`, HS256, EdDSA and RS256 JWTs must be the
//! same bytes on both sides; ES256 tokens and `dir`/A256GCM JWEs are
//! randomized, so each side verifies or decrypts what the other made. Every
//! rejection (tampered signature, expired, wrong audience, ...) must carry
//! the same jose error code.

use phalanx_sandbox::{AgentCode, FetchPolicy, HttpRequest, Limits, Pool, PoolConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const FIXTURE: &str = include_str!("npm/jose-fixture.json");
/// What the agent encrypts with `CompactEncrypt` (as in `agents/jose-app.ts`).
const PLAINTEXT: &str = "Grüße, agent ✓ — 🔐";
const ALGS: [&str; 4] = ["HS256", "EdDSA", "RS256", "ES256"];
/// Deterministic given the key and the claims: must be byte-identical.
const DETERMINISTIC: [&str; 3] = ["HS256", "EdDSA", "RS256"];
const BAD_SIGNATURE: &str = "ERR_JWS_SIGNATURE_VERIFICATION_FAILED";
const BAD_JWE: &str = "ERR_JWE_DECRYPTION_FAILED";

/// Installs the pinned packages and bundles the agents (needs Node.js and
/// npm, which `scripts/test.sh` installs when missing). Returns the jose
/// bundle.
fn build_bundle() -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-jose");
    let status =
        Command::new("bash").arg(fixtures.join("build.sh")).env("OUT_DIR", &out).status().unwrap_or_else(|e| {
            panic!("cannot run tests/npm/build.sh ({e}); scripts/test.sh installs Node.js and npm")
        });
    assert!(status.success(), "tests/npm/build.sh failed: is npm installed and the registry reachable?");
    out.join("jose-app.js")
}

/// The request body: the fixture, and the tokens the other side made.
fn body(fixture: &Value, peer: Option<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "fixture": fixture, "peer": peer })).unwrap()
}

/// Runs the bundle's `fetch` on Node's own Request/Response/crypto.
fn node(bundle: &Path, body: &[u8]) -> Value {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-jose");
    // `.mjs`: nothing there says `"type": "module"`.
    let module = dir.join("jose-app.mjs");
    std::fs::copy(bundle, &module).unwrap();
    let runner = dir.join("run-node.mjs");
    std::fs::write(
        &runner,
        "import { readFileSync } from 'node:fs';\n\
         import { pathToFileURL } from 'node:url';\n\
         const [bundle, bodyFile] = process.argv.slice(2);\n\
         const agent = (await import(pathToFileURL(bundle).href)).default;\n\
         const request = new Request('https://agent.example/jose', { method: 'POST', \
         headers: { 'content-type': 'application/json' }, body: readFileSync(bodyFile) });\n\
         const response = await agent.fetch(request, {}, { waitUntil() {} });\n\
         process.stdout.write(JSON.stringify({ status: response.status, body: await response.text() }));\n",
    )
    .unwrap();
    let body_file = dir.join(format!("request-{}.json", std::process::id()));
    std::fs::write(&body_file, body).unwrap();
    let output = Command::new("node")
        .arg(&runner)
        .arg(&module)
        .arg(&body_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); scripts/test.sh installs Node.js"));
    let _ = std::fs::remove_file(&body_file);
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the runner prints JSON");
    let text = answer["body"].as_str().unwrap();
    assert_eq!(answer["status"], 200, "jose-app failed in Node: {text}");
    serde_json::from_str(text).expect("jose-app answers JSON")
}

/// Runs the bundle in a sandbox leased from `pool`, as `phalanx` serves it.
async fn sandbox(pool: &Arc<Pool>, code: &AgentCode, body: Vec<u8>) -> Value {
    // Generous: the debug build runs jose's JavaScript slowly.
    let limits =
        Limits { cpu_time_max: Duration::from_secs(20), wall_time_max: Duration::from_secs(60), ..Limits::default() };
    let mut lease = pool.lease("jose-app", code, limits, &FetchPolicy::default()).await.unwrap();
    let request = HttpRequest {
        url: "https://agent.example/jose".into(),
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body),
    };
    let fetched = lease.fetch(request, vec![]).await.unwrap();
    let text = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(fetched.response.status, 200, "jose-app failed in the sandbox: {text} {:?}", fetched.logs);
    serde_json::from_str(&text).expect("jose-app answers JSON")
}

/// The tokens one side made, for the other to verify and decrypt.
fn peer_of(answer: &Value) -> Value {
    let jws: serde_json::Map<String, Value> =
        ALGS.iter().map(|alg| (alg.to_string(), answer["jws"][alg]["token"].clone())).collect();
    json!({ "jws": jws, "jwt": answer["jwe"]["jwt"], "jwe": answer["jwe"]["compact"] })
}

/// `answer` without what is randomized (ES256 signatures, JWE IVs and
/// ciphertexts), for an exact comparison of the rest.
fn deterministic_part(answer: &Value) -> Value {
    let mut answer = answer.clone();
    answer["jws"]["ES256"]["token"] = Value::Null;
    answer["jwe"]["jwt"] = Value::Null;
    answer["jwe"]["compact"] = Value::Null;
    answer
}

/// What jose must report for every rejection case of the agent.
fn expected_rejections() -> Value {
    json!({
        "HS256 tampered signature": { "error": BAD_SIGNATURE },
        "EdDSA tampered signature": { "error": BAD_SIGNATURE },
        "RS256 tampered signature": { "error": BAD_SIGNATURE },
        "ES256 tampered signature": { "error": BAD_SIGNATURE },
        "HS256 expired": { "error": "ERR_JWT_EXPIRED" },
        "HS256 wrong audience": { "error": "ERR_JWT_CLAIM_VALIDATION_FAILED" },
        "HS256 alg not allowed": { "error": "ERR_JOSE_ALG_NOT_ALLOWED" },
        "HS256 wrong secret": { "error": BAD_SIGNATURE },
        // jose's own key check (not WebCrypto's): a TypeError, no code.
        "RS256 with EdDSA key": {
            "error": "TypeError: CryptoKey does not support this operation, its algorithm.name must be RSASSA-PKCS1-v1_5"
        },
        "EdDSA signed by other key": { "error": BAD_SIGNATURE },
        "JWE tampered ciphertext": { "error": BAD_JWE },
        "JWE tampered tag": { "error": BAD_JWE },
        "JWE wrong key": { "error": BAD_JWE },
    })
}

/// Checks one side's own answer against the fixture.
fn check_own(side: &str, answer: &Value, claims: &Value) {
    for alg in ALGS {
        let token = answer["jws"][alg]["token"].as_str().unwrap_or_else(|| panic!("{side} {alg}: no token"));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{side} {alg}: compact JWS {token}");
        // Raw signatures: 32 (HMAC-SHA-256), 64 (Ed25519, P-256 r||s), 256 (RSA-2048) bytes.
        let signature_chars = match alg {
            "HS256" => 43,
            "EdDSA" | "ES256" => 86,
            _ => 342,
        };
        assert_eq!(parts[2].len(), signature_chars, "{side} {alg}: signature length in {token}");
        let kid = format!("{}-1", alg.to_lowercase());
        let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
        assert_eq!(
            answer["jws"][alg]["verified"],
            json!({ "payload": claims, "protectedHeader": header }),
            "{side} {alg}: jwtVerify of its own token"
        );
        assert_eq!(answer["jws"][alg]["header"], header, "{side} {alg}: decodeProtectedHeader");
        assert_eq!(&answer["jws"][alg]["claims"], claims, "{side} {alg}: decodeJwt");
    }
    assert_eq!(
        answer["jwe"]["jwtDecrypted"],
        json!({ "payload": claims, "protectedHeader": { "alg": "dir", "enc": "A256GCM", "cty": "JWT" } }),
        "{side}: jwtDecrypt of its own EncryptJWT"
    );
    assert_eq!(
        answer["jwe"]["compactDecrypted"],
        json!({ "plaintext": PLAINTEXT, "protectedHeader": { "alg": "dir", "enc": "A256GCM" } }),
        "{side}: compactDecrypt of its own CompactEncrypt"
    );
    for key in ["jwt", "compact"] {
        let jwe = answer["jwe"][key].as_str().unwrap_or_else(|| panic!("{side}: no JWE {key}"));
        let parts: Vec<&str> = jwe.split('.').collect();
        // header . (no encrypted key for "dir") . 96-bit IV . ciphertext . 128-bit tag
        assert!(parts.len() == 5 && parts[1].is_empty(), "{side}: compact JWE {jwe}");
        assert_eq!((parts[2].len(), parts[4].len()), (16, 22), "{side}: IV and tag lengths in {jwe}");
    }
    assert_eq!(answer["rejections"], expected_rejections(), "{side}: rejections");
}

/// Checks what one side reported for the tokens the other side made.
fn check_peer(side: &str, other: &str, answer: &Value, claims: &Value) {
    let peer = &answer["peer"];
    for alg in ALGS {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": format!("{}-1", alg.to_lowercase()) });
        assert_eq!(
            peer[alg],
            json!({ "payload": claims, "protectedHeader": header }),
            "{side} verifying the {alg} token {other} made"
        );
        assert_eq!(
            peer[format!("{alg} tampered")],
            json!({ "error": BAD_SIGNATURE }),
            "{side} verifying a tampered {alg} token {other} made"
        );
    }
    assert_eq!(
        peer["jwt"],
        json!({ "payload": claims, "protectedHeader": { "alg": "dir", "enc": "A256GCM", "cty": "JWT" } }),
        "{side} decrypting the JWT {other} encrypted"
    );
    assert_eq!(
        peer["jwe"],
        json!({ "plaintext": PLAINTEXT, "protectedHeader": { "alg": "dir", "enc": "A256GCM" } }),
        "{side} decrypting the JWE {other} encrypted"
    );
    assert_eq!(peer["jwe tampered"], json!({ "error": BAD_JWE }), "{side} decrypting a tampered JWE {other} made");
}

#[tokio::test]
async fn jose_signs_verifies_and_encrypts_like_node() {
    let bundle = build_bundle();
    let source = std::fs::read_to_string(&bundle).unwrap();
    assert!(!source.lines().any(|l| l.starts_with("import ")), "jose-app is one module");
    let code = AgentCode::compile("jose-app.js", &source).unwrap();
    let pool = Pool::new(PoolConfig::default());

    let fixture: Value = serde_json::from_str(FIXTURE).expect("tests/npm/jose-fixture.json is JSON");
    let mut claims = fixture["claims"].clone();
    claims["iat"] = fixture["iat"].clone();
    claims["exp"] = fixture["exp"].clone();

    // Round one: each side signs, encrypts, verifies and rejects on its own.
    let reference = node(&bundle, &body(&fixture, None));
    let ours = sandbox(&pool, &code, body(&fixture, None)).await;
    check_own("node", &reference, &claims);
    check_own("sandbox", &ours, &claims);
    for alg in DETERMINISTIC {
        assert_eq!(ours["jws"][alg]["token"], reference["jws"][alg]["token"], "{alg} JWT differs from Node's");
    }
    assert_eq!(ours["keys"], reference["keys"], "imported/exported keys and thumbprints differ from Node's");
    assert_eq!(ours["rejections"], reference["rejections"], "rejections differ from Node's");
    assert_eq!(deterministic_part(&ours), deterministic_part(&reference), "the answers differ from Node's");

    // Round two: each side verifies and decrypts what the other made.
    let node_checked = node(&bundle, &body(&fixture, Some(peer_of(&ours))));
    let ours_checked = sandbox(&pool, &code, body(&fixture, Some(peer_of(&reference)))).await;
    check_peer("node", "the sandbox", &node_checked, &claims);
    check_peer("the sandbox", "node", &ours_checked, &claims);
    assert_eq!(node_checked["peer"], ours_checked["peer"], "cross-verification differs");
    for alg in DETERMINISTIC {
        assert_eq!(ours_checked["jws"][alg]["token"], ours["jws"][alg]["token"], "{alg} JWT changed between calls");
    }
}
