//! Who owns the objects an owner is about to create: those that already exist and that this
//! provider never applied (no server-side apply entry of its field manager) belong to
//! someone else, such as a Flux or agentk installed by hand or by Helm. Taking them over
//! needs the user's opt-in, because destroying the owner would then delete them.
//! Namespaces are left out: users create them ahead of time, and an owner keeps them only
//! as long as it is asked to.

use serde_json::Value;

use super::{EngineError, bounded};
use crate::kube::{FIELD_MANAGER, KubeClient, KubeError, ObjRef};

/// The ids of the `desired` objects that exist and were not applied by this provider.
pub async fn foreign(client: &KubeClient, desired: &[Value]) -> Result<Vec<String>, EngineError> {
    let checked = bounded(
        desired
            .iter()
            .enumerate()
            .filter(|(_, o)| o["kind"] != "Namespace"),
        super::DEFAULT_CONCURRENCY,
        |(index, want)| async move {
            let r = ObjRef::of(want).map_err(|e| EngineError::Manifest {
                index,
                message: e.to_string(),
            })?;
            let live = match client.get(&r).await {
                Ok(live) => live,
                // A kind not served yet (its CRD comes with this apply) has no objects.
                Err(KubeError::UnknownKind { .. }) => None,
                Err(e) => return Err(EngineError::kube(r.to_string())(e)),
            };
            Ok(live
                .filter(|live| !applied_by_us(live))
                .map(|_| r.to_string()))
        },
    )
    .await?;
    let mut ids: Vec<String> = checked.into_iter().flatten().collect();
    ids.sort();
    Ok(ids)
}

/// Whether our field manager ever applied the object (an update by patch, such as a
/// restart, does not make it ours).
/// A live object that shows another owner: its managed fields (when read with them) have no
/// apply of ours. An object recreated by something else after ours was deleted is one.
pub(super) fn shows_another_owner(live: &Value) -> bool {
    live["metadata"]["managedFields"].is_array() && !applied_by_us(live)
}

fn applied_by_us(live: &Value) -> bool {
    live["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e["manager"] == FIELD_MANAGER && e["operation"] == "Apply")
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_our_server_side_apply_makes_an_object_ours() {
        let with = |entries: Value| json!({ "metadata": { "managedFields": entries } });
        assert!(applied_by_us(&with(json!([
            { "manager": "helm", "operation": "Update" },
            { "manager": FIELD_MANAGER, "operation": "Apply" },
        ]))));
        assert!(!applied_by_us(&with(json!([
            { "manager": FIELD_MANAGER, "operation": "Update" },
        ]))));
        assert!(!applied_by_us(&json!({ "metadata": {} })));
    }
}
