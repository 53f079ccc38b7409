//! Logs of the long-running commands (`dev`, `node`, `worker`) on stderr:
//! human-readable by default, one JSON object per line with `--log-json`
//! (or `PHALANX_LOG_JSON=1`) for log collectors. `RUST_LOG` overrides the
//! default filter. Secrets never reach a log line: the libraries log ids,
//! heights and error kinds, never keys, bodies or agent output.

/// Installs the process's log subscriber.
pub(crate) fn init(default_filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
