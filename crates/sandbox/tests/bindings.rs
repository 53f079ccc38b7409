//! Host objects on `env` (the hook `env.STATE` and `env.AGENTS` use): the
//! agent calls the binding's methods and awaits their results; host errors
//! arrive as exceptions; only the offered methods exist; limits hold.

use phalanx_sandbox::{Binding, BindingFuture, HttpRequest, Limits, Sandbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An in-memory key-value store with `get`, `put` and `fail`.
#[derive(Debug, Default)]
struct Store(Mutex<HashMap<String, String>>);

impl Binding for Store {
    fn methods(&self) -> Vec<String> {
        vec!["get".into(), "put".into(), "fail".into()]
    }

    fn call(&self, method: &str, arguments_json: String) -> BindingFuture {
        let arguments: Vec<serde_json::Value> = match serde_json::from_str(&arguments_json) {
            Ok(arguments) => arguments,
            Err(error) => return Box::pin(async move { Err(format!("bad arguments: {error}")) }),
        };
        let key = arguments.first().and_then(|k| k.as_str()).unwrap_or_default().to_string();
        let mut store = self.0.lock().unwrap();
        let result = match method {
            "put" => {
                let value = arguments.get(1).cloned().unwrap_or_default().to_string();
                store.insert(key, value);
                Ok("true".to_string())
            }
            "get" => Ok(store.get(&key).cloned().unwrap_or_else(|| "null".into())),
            _ => Err(format!("store is read-only for {key}")),
        };
        Box::pin(async move { result })
    }
}

#[tokio::test]
async fn agents_call_host_bindings_on_env() {
    let store = Arc::new(Store::default());
    let mut sandbox = Sandbox::new(Limits::default()).await.unwrap();
    sandbox.bind("STATE", store.clone()).await.unwrap();
    assert!(sandbox.bind("not a name", store.clone()).await.is_err());
    sandbox
        .load(
            "agent.js",
            r#"export default {
                async fetch(request, env) {
                    const out = {};
                    out.methods = Object.keys(env.STATE).sort();
                    out.put = await env.STATE.put("greeting", { text: "hi", n: 2 });
                    out.got = await env.STATE.get("greeting");
                    out.missing = await env.STATE.get("nope");
                    try { await env.STATE.fail("x"); } catch (e) { out.error = `${e.name}: ${e.message}`; }
                    out.secret = env.API_KEY;
                    let limited = 0;
                    try { for (let i = 0; i < 2000; i++) await env.STATE.get("k"); } catch (e) { limited = e.message; }
                    out.limited = limited;
                    return Response.json(out);
                },
            };"#,
            "fetch",
        )
        .await
        .unwrap();
    let request = HttpRequest { url: "https://a.example/".into(), method: "GET".into(), headers: vec![], body: None };
    let fetched = sandbox.fetch(request, vec![("API_KEY".into(), "sk-1".into())]).await.unwrap();
    let out: serde_json::Value = serde_json::from_slice(&fetched.response.body).unwrap();
    assert_eq!(out["methods"], serde_json::json!(["fail", "get", "put"]));
    assert_eq!(out["put"], true);
    assert_eq!(out["got"], serde_json::json!({ "text": "hi", "n": 2 }));
    assert_eq!(out["missing"], serde_json::Value::Null);
    assert_eq!(out["error"], "TypeError: store is read-only for x");
    assert_eq!(out["secret"], "sk-1");
    assert_eq!(out["limited"], "at most 1000 binding calls per request");
    let stored: serde_json::Value = serde_json::from_str(store.0.lock().unwrap().get("greeting").unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({ "text": "hi", "n": 2 }));
}
