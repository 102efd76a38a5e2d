//! `?watch=true`: a newline-delimited JSON event stream fed by the emulator's broadcast
//! channel, enough for kubectl's wait-for-deletion and simple informers. A watcher that falls
//! further behind than the channel holds gets the real server's `410 Expired` ERROR event and
//! the end of the stream, so it lists again instead of silently missing changes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::types::ResourceType;
use super::{KubeEmulator, ObjectEvent};

/// What one watch stream filters on.
struct Filter {
    rt: ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn wants(&self, obj: &Value) -> bool {
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        let same_type = group == self.rt.group
            && obj.get("kind").and_then(Value::as_str) == Some(self.rt.kind.as_str());
        let ns_ok = self
            .ns
            .as_deref()
            .is_none_or(|n| obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n));
        same_type
            && ns_ok
            && self.labels.matches(obj.pointer("/metadata/labels"))
            && self.fields.matches(obj)
    }
}

fn line(kind: &str, rt: &ResourceType, obj: &Value) -> Bytes {
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version());
    let mut s = json!({ "type": kind, "object": o }).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn expired_line() -> Bytes {
    let mut s = json!({ "type": "ERROR", "object": ApiError::expired().body() }).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub fn watch(
    emu: &Arc<KubeEmulator>,
    rt: &ResourceType,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    send_initial: bool,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let filter = Filter {
        rt: rt.clone(),
        ns: ns.map(String::from),
        labels,
        fields,
    };
    let (rx, initial) = {
        let st = emu.lock();
        let rx = emu.subscribe();
        let initial: Vec<Bytes> = if send_initial {
            st.list(rt, ns)
                .filter(|o| filter.wants(o))
                .map(|o| line("ADDED", rt, &o))
                .collect()
        } else {
            Vec::new()
        };
        (rx, initial)
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let head = futures_util::stream::iter(initial.into_iter().map(Ok::<Bytes, Infallible>));
    let tail = futures_util::stream::unfold(Some((rx, filter)), move |open| async move {
        let (mut rx, filter) = open?;
        loop {
            let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => return None,
                Ok(Err(RecvError::Lagged(_))) => return Some((Ok(expired_line()), None)),
                Ok(Ok(ev)) => ev,
            };
            let (kind, obj) = match &ev {
                ObjectEvent::Added(o) => ("ADDED", o),
                ObjectEvent::Modified(o) => ("MODIFIED", o),
                ObjectEvent::Deleted(o) => ("DELETED", o),
            };
            if filter.wants(obj) {
                let bytes = line(kind, &filter.rt, obj);
                return Some((Ok::<Bytes, Infallible>(bytes), Some((rx, filter))));
            }
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(head, tail));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
