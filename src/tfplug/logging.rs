//! Logs to stderr as hclog JSON lines (`@level`, `@message`, `@timestamp`, `@module`), the
//! format go-plugin parses from a plugin's stderr, so `TF_LOG=debug` shows our logs inline
//! with Terraform's.
//!
//! The level comes from `TF_LOG_PROVIDER_<NAME>` (the provider's type name, upper case),
//! `TF_LOG_PROVIDER` or `TF_LOG`, as with providers built on terraform-plugin-log. With none of them set nothing is formatted at
//! all, which keeps the plan hot path free of logging cost.
//!
//! Secrets: nothing here redacts. Callers log identifiers and counts, never values.

use std::io::Write as _;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Reads the Terraform log level of provider `type_name` from the environment.
fn level_from_env(type_name: &str) -> LevelFilter {
    let own = format!("TF_LOG_PROVIDER_{}", type_name.to_ascii_uppercase());
    [own.as_str(), "TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .map_or(LevelFilter::OFF, |v| parse_level(&v))
}

fn parse_level(text: &str) -> LevelFilter {
    match text.trim().to_ascii_uppercase().as_str() {
        "TRACE" | "JSON" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" => LevelFilter::ERROR,
        "OFF" => LevelFilter::OFF,
        // Terraform treats any other non-empty value as TRACE.
        _ => LevelFilter::TRACE,
    }
}

/// Installs the hclog layer as the global subscriber for provider `type_name`. Safe to call
/// more than once.
pub fn init(module: &'static str, type_name: &str) {
    let _ = tracing_subscriber::registry()
        .with(HclogLayer { module }.with_filter(targets(level_from_env(type_name))))
        .try_init();
}

/// Libraries below us log at debug what we must never show (response bodies that may echo a
/// Secret, connection chatter); they are capped at info whatever the level.
const CAPPED_TARGETS: [&str; 8] = [
    "kube_client",
    "kube",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
];

fn targets(level: LevelFilter) -> Targets {
    CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(level), |t, target| {
            t.with_target(*target, level.min(LevelFilter::INFO))
        })
}

/// Formats events as hclog JSON lines, with the fields of enclosing spans.
pub struct HclogLayer {
    module: &'static str,
}

struct SpanFields(Map<String, Json>);

impl<S> Layer<S> for HclogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = JsonVisitor::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let line = self.format(event, &ctx);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    }
}

impl HclogLayer {
    fn format<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> String
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut out = Map::new();
        out.insert(
            "@level".into(),
            Json::from(hclog_level(*event.metadata().level())),
        );
        out.insert(
            "@timestamp".into(),
            Json::from(humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()),
        );
        out.insert("@module".into(), Json::from(self.module));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    out.extend(fields.0.clone());
                }
            }
        }
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let message = visitor.fields.remove("message").unwrap_or(Json::from(""));
        out.extend(visitor.fields);
        out.insert("@message".into(), message);
        let mut line = Json::Object(out).to_string();
        line.push('\n');
        line
    }
}

fn hclog_level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

#[derive(Default)]
struct JsonVisitor {
    fields: Map<String, Json>,
}

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .insert(field.name().into(), Json::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), Json::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), Json::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatty_libraries_are_capped_at_info() {
        let t = targets(LevelFilter::TRACE);
        assert!(t.would_enable("terraform_provider_gitlabflux::gitlab", &Level::TRACE));
        assert!(!t.would_enable("kube_client::client", &Level::DEBUG));
        assert!(t.would_enable("kube_client::client", &Level::INFO));
        assert!(!targets(LevelFilter::WARN).would_enable("kube_client", &Level::INFO));
    }

    #[test]
    fn terraform_levels_map_like_plugin_log() {
        assert_eq!(parse_level("debug"), LevelFilter::DEBUG);
        assert_eq!(parse_level("JSON"), LevelFilter::TRACE);
        assert_eq!(parse_level("off"), LevelFilter::OFF);
        assert_eq!(parse_level("yes please"), LevelFilter::TRACE);
    }

    #[test]
    fn events_become_hclog_json_lines() {
        use std::sync::{Arc, Mutex};
        // Capture what the layer formats by running it under a scoped subscriber.
        let captured = Arc::new(Mutex::new(Vec::<String>::new()));
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
            fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
                let line = HclogLayer { module: "provider" }.format(event, &ctx);
                self.0.lock().expect("lock").push(line);
            }
            fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
                HclogLayer { module: "provider" }.on_new_span(attrs, id, ctx);
            }
        }
        let subscriber = tracing_subscriber::registry().with(Capture(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc", tf_rpc = "PlanResourceChange");
            let _g = span.enter();
            tracing::debug!(resource = "gitlabflux_agent", "planning");
        });
        let lines = captured.lock().expect("lock");
        let parsed: Json = serde_json::from_str(lines[0].trim()).expect("json line");
        assert_eq!(parsed["@level"], "debug");
        assert_eq!(parsed["@message"], "planning");
        assert_eq!(parsed["@module"], "provider");
        assert_eq!(parsed["tf_rpc"], "PlanResourceChange");
        assert_eq!(parsed["resource"], "gitlabflux_agent");
        assert!(
            parsed["@timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
}
