//! JSON logs for every function: one JSON object per line with the event's fields at the top level
//! (`athlete`, `outcome`, counts, `message`, `level`), `function` on every line, and the fields of the
//! enclosing spans (the runtime's `requestId`, the job's `athlete`, `job_id`, …) merged under `span`,
//! so keys never clash and Logs Insights reads `outcome` or `span.job_id` directly.

use json_subscriber::JsonLayer;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The connector's line format, writing to `writer` (tests capture lines with their own writer).
pub fn json_layer<S, W>(function: &'static str, writer: W) -> JsonLayer<S, W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    let mut layer = JsonLayer::new(writer);
    layer.with_level("level");
    layer.with_flattened_event();
    layer.with_flattened_span_fields("span");
    // CloudWatch stamps each line, so no timestamp is written.
    layer.add_static_field("function", serde_json::Value::from(function));
    layer
}

/// The level filter: `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, default `info`.
pub fn filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string())
        .to_lowercase();
    EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the JSON subscriber on stdout for `function`. Safe to call twice.
pub fn init(function: &'static str) {
    let installed = tracing_subscriber::registry()
        .with(filter())
        .with(json_layer(function, std::io::stdout))
        .try_init()
        .is_ok();
    if installed {
        tracing::info!("starting");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lines_are_flat_json_with_span_fields_and_the_function() {
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(json_layer("sync-worker", buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("sync", athlete = "ath-1", job_id = "j-9");
            span.in_scope(|| tracing::info!(outcome = "synced", created = 3, "sync finished"));
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "sync finished");
        assert_eq!(line["function"], "sync-worker");
        assert_eq!(line["span"]["athlete"], "ath-1");
        assert_eq!(line["span"]["job_id"], "j-9");
        assert_eq!(line["outcome"], "synced");
        assert_eq!(line["created"], 3);
        let keys = text.lines().next().unwrap().matches("\"athlete\"").count();
        assert_eq!(keys, 1, "no key appears twice: {text}");
    }
}
