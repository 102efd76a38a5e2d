//! Flux sharding, vertical scaling and tenants end to end, through the real terraform against
//! the sandbox with simulated controllers: the shard controller set on the v2.8.5 fixture,
//! 20 tenants placed with `shard_for`, a third shard moving exactly the tenants whose
//! rendezvous winner changed, the refusal to remove a shard in use, tenant drift, import and
//! destroy, the status data source's shard layout, and bad inputs on the right attribute.

mod common;

use std::collections::BTreeMap;

use common::{
    SandboxProcess, Workspace, flux_controller_args as args, flux_deployment as deployment,
    flux_fixture as fixture, kubectl, kubectl_json, provider_block,
};
use serde_json::{Value, json};
use terraform_provider_gitlabflux::flux::placement::shard_for;

const KEY: &str = "sharding.fluxcd.io/key";

fn tenants() -> Vec<String> {
    (0..20).map(|i| format!("tenant-{i:02}")).collect()
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn hcl_list(items: &[&str]) -> String {
    serde_json::to_string(items).expect("list")
}

/// The bootstrap with `shards`, and 20 tenants placed over `placement`.
fn config(sandbox: &SandboxProcess, shards: &[&str], placement: &[&str]) -> String {
    format!(
        r#"{provider}
locals {{
  tenants   = {tenants}
  placement = {placement}
}}

resource "gitlabflux_flux_bootstrap" "this" {{
  distribution = {{ source = "{fixture}" }}
  multitenancy = {{ enabled = true }}
  sharding = {{
    shards = {shards}
  }}
  scaling = {{
    size             = "large"
    concurrent       = 30
    in_memory_builds = true
  }}
  timeout = "30s"
}}

resource "gitlabflux_flux_tenant" "t" {{
  for_each   = toset(local.tenants)
  name       = each.key
  namespaces = [each.key]
  source     = {{ url = "https://gitlab.example.com/fleet/${{each.key}}.git" }}
  shard      = provider::gitlabflux::shard_for(each.key, local.placement)
  timeout    = "30s"
  depends_on = [gitlabflux_flux_bootstrap.this]
}}
"#,
        provider = provider_block(sandbox),
        tenants = serde_json::to_string(&tenants()).expect("list"),
        placement = hcl_list(placement),
        shards = hcl_list(shards),
        fixture = fixture(),
    )
}

/// Tenant -> the shard label its Kustomization carries in the cluster.
fn live_placement(sandbox: &SandboxProcess) -> BTreeMap<String, String> {
    let list = kubectl_json(
        sandbox,
        &["get", "kustomizations.kustomize.toolkit.fluxcd.io", "-A"],
    )
    .expect("kustomizations");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|k| k["metadata"]["namespace"] != "flux-system")
        .map(|k| {
            (
                k["metadata"]["name"].as_str().expect("name").to_string(),
                k["metadata"]["labels"][KEY]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn expected_placement(shards: &[&str]) -> BTreeMap<String, String> {
    tenants()
        .into_iter()
        .map(|t| {
            let shard = shard_for(&t, shards).expect("placed").to_string();
            (t, shard)
        })
        .collect()
}

fn assert_controller_set(sandbox: &SandboxProcess, shards: &[&str]) {
    let mut expected: Vec<String> = vec![
        "helm-controller".into(),
        "kustomize-controller".into(),
        "notification-controller".into(),
        "source-controller".into(),
    ];
    for shard in shards {
        for c in [
            "helm-controller",
            "kustomize-controller",
            "source-controller",
        ] {
            expected.push(format!("{c}-{shard}"));
        }
    }
    expected.sort();
    let deployments = kubectl_json(sandbox, &["get", "deploy", "-n", "flux-system"]).expect("list");
    assert_eq!(names(&deployments), expected);
    let services = kubectl_json(sandbox, &["get", "svc", "-n", "flux-system"]).expect("list");
    let mut expected_services = vec![
        "notification-controller".to_string(),
        "source-controller".to_string(),
        "webhook-receiver".to_string(),
    ];
    expected_services.extend(shards.iter().map(|s| format!("source-controller-{s}")));
    expected_services.sort();
    assert_eq!(names(&services), expected_services);
}

fn shards_tenants_placement_and_shard_removal() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    let two = ["shard1", "shard2"];
    let three = ["shard1", "shard2", "shard3"];
    ws.write(&config(&sandbox, &two, &two));
    ws.apply();
    ws.assert_no_changes();
    // reconcile_on_change: each tenant's apply asked Flux to reconcile and waited for it.
    for tenant in tenants() {
        let ks = kubectl_json(
            &sandbox,
            &[
                "get",
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "-n",
                &tenant,
                &tenant,
            ],
        )
        .expect("tenant Kustomization");
        let requested = &ks["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"];
        assert!(requested.is_string(), "{tenant}: {ks:#}");
        assert_eq!(
            &ks["status"]["lastHandledReconcileAt"], requested,
            "{tenant}"
        );
    }

    // Exactly the operator's controller set, selectors, services and args.
    assert_controller_set(&sandbox, &two);
    for main in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
    ] {
        let a = args(&sandbox, main);
        assert!(
            a.contains(&format!("--watch-label-selector=!{KEY}")),
            "{main}: {a:?}"
        );
    }
    assert!(
        !args(&sandbox, "notification-controller")
            .iter()
            .any(|a| a.starts_with("--watch-label-selector"))
    );
    let shard = deployment(&sandbox, "source-controller-shard2");
    assert_eq!(
        shard["spec"]["selector"]["matchLabels"],
        json!({ "app": "source-controller-shard2" })
    );
    assert_eq!(
        shard["spec"]["template"]["metadata"]["labels"]["app"],
        "source-controller-shard2"
    );
    let shard_args = args(&sandbox, "source-controller-shard2");
    assert!(shard_args.contains(&format!("--watch-label-selector={KEY}=shard2")));
    assert!(
        shard_args.contains(
            &"--storage-adv-addr=source-controller-shard2.$(RUNTIME_NAMESPACE).svc.cluster.local."
                .to_string()
        )
    );
    let service = kubectl_json(
        &sandbox,
        &[
            "get",
            "svc",
            "-n",
            "flux-system",
            "source-controller-shard1",
        ],
    )
    .expect("shard service");
    assert_eq!(
        service["spec"]["selector"],
        json!({ "app": "source-controller-shard1" })
    );
    // Shared objects are not duplicated.
    let accounts = kubectl_json(&sandbox, &["get", "sa", "-n", "flux-system"]).expect("list");
    assert_eq!(
        names(&accounts),
        [
            "helm-controller",
            "kustomize-controller",
            "notification-controller",
            "source-controller"
        ]
    );

    // Scaling: the large preset, the explicit override, in-memory builds, on shards too.
    for name in ["kustomize-controller", "kustomize-controller-shard1"] {
        let a = args(&sandbox, name);
        assert!(a.contains(&"--concurrent=30".to_string()), "{name}: {a:?}");
        assert!(a.contains(&"--requeue-dependency=5s".to_string()), "{name}");
        let d = deployment(&sandbox, name);
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["resources"]["limits"],
            json!({ "cpu": "3000m", "memory": "3Gi" }),
            "{name}"
        );
        assert_eq!(
            spec["volumes"],
            json!([{ "name": "temp", "emptyDir": { "medium": "Memory" } }]),
            "{name}"
        );
    }

    // The tenants carry the shard shard_for gives them, under lockdown.
    assert_eq!(live_placement(&sandbox), expected_placement(&two));
    let ks = kubectl_json(
        &sandbox,
        &[
            "get",
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "-n",
            "tenant-00",
            "tenant-00",
        ],
    )
    .expect("tenant Kustomization");
    assert_eq!(ks["spec"]["serviceAccountName"], "tenant-00");
    let binding = kubectl_json(
        &sandbox,
        &[
            "get",
            "rolebinding",
            "-n",
            "tenant-00",
            "tenant-00-reconciler",
        ],
    )
    .expect("reconciler binding");
    assert_eq!(binding["roleRef"]["name"], "cluster-admin");

    // The status data source reports the layout.
    let status = Workspace::new();
    status.write(&format!(
        "{}\ndata \"gitlabflux_flux_status\" \"s\" {{}}\noutput \"shards\" {{ value = data.gitlabflux_flux_status.s.shards }}\noutput \"key\" {{ value = data.gitlabflux_flux_status.s.sharding_key }}\n",
        provider_block(&sandbox)
    ));
    status.apply();
    let outputs = status.outputs();
    assert_eq!(outputs["key"]["value"], KEY);
    let reported = outputs["shards"]["value"]
        .as_array()
        .expect("shards")
        .clone();
    assert_eq!(reported.len(), 2);
    let placed = expected_placement(&two);
    for entry in &reported {
        let shard = entry["name"].as_str().expect("name");
        assert_eq!(
            entry["controllers"],
            json!([
                format!("helm-controller-{shard}"),
                format!("kustomize-controller-{shard}"),
                format!("source-controller-{shard}")
            ])
        );
        let tenants_here = placed.values().filter(|s| *s == shard).count();
        // Each tenant has a source and a Kustomization on its shard.
        assert_eq!(entry["objects"], json!(2 * tenants_here), "{shard}");
        assert_eq!(entry["ready"], json!(true));
    }

    // A third shard moves exactly the tenants whose rendezvous winner is now shard3.
    let before = expected_placement(&two);
    let after = expected_placement(&three);
    let moved: Vec<String> = tenants()
        .into_iter()
        .filter(|t| before[t] != after[t])
        .collect();
    assert!(!moved.is_empty() && moved.iter().all(|t| after[t] == "shard3"));
    ws.write(&config(&sandbox, &three, &three));
    let mut changed: Vec<String> = ws
        .planned_changes()
        .into_iter()
        .map(|(address, actions)| {
            assert_eq!(actions, ["update"], "{address}");
            address
        })
        .collect();
    changed.sort();
    let mut expected_changes: Vec<String> = moved
        .iter()
        .map(|t| format!("gitlabflux_flux_tenant.t[\"{t}\"]"))
        .collect();
    expected_changes.push("gitlabflux_flux_bootstrap.this".into());
    expected_changes.sort();
    assert_eq!(changed, expected_changes);
    ws.apply();
    ws.assert_no_changes();
    assert_controller_set(&sandbox, &three);
    assert_eq!(live_placement(&sandbox), after);

    // Removing shard3 while tenants still use it is refused at plan.
    ws.write(&config(&sandbox, &two, &three));
    let error = ws.plan_error("Shard shard3 is still in use");
    let detail = error["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!(
            "{} Flux object(s) carry {KEY}=shard3: ",
            2 * moved.len()
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("GitRepository {0}/{0}", moved[0])),
        "{detail}"
    );
    assert_controller_set(&sandbox, &three);

    // Once the tenants have moved off it, the shard goes.
    ws.write(&config(&sandbox, &three, &two));
    ws.apply();
    assert_eq!(live_placement(&sandbox), before);
    ws.write(&config(&sandbox, &two, &two));
    ws.apply();
    ws.assert_no_changes();
    assert_controller_set(&sandbox, &two);

    // Tenant drift: a deleted RoleBinding is planned back and repaired.
    kubectl(
        &sandbox,
        &[
            "delete",
            "rolebinding",
            "-n",
            "tenant-03",
            "tenant-03-reconciler",
        ],
    );
    ws.assert_only_change("gitlabflux_flux_tenant.t[\"tenant-03\"]", "update");
    ws.apply();
    assert!(
        kubectl_json(
            &sandbox,
            &[
                "get",
                "rolebinding",
                "-n",
                "tenant-03",
                "tenant-03-reconciler"
            ]
        )
        .is_some()
    );

    // Import by <namespace>/<name> reads the tenant back; the next plan has nothing to do.
    let imported = Workspace::new();
    let shard = before["tenant-05"].clone();
    imported.write(&format!(
        r#"{}
resource "gitlabflux_flux_tenant" "x" {{
  name       = "tenant-05"
  namespaces = ["tenant-05"]
  source     = {{ url = "https://gitlab.example.com/fleet/tenant-05.git" }}
  shard      = "{shard}"
}}
"#,
        provider_block(&sandbox)
    ));
    imported.ok(&[
        "import",
        "-no-color",
        "gitlabflux_flux_tenant.x",
        "tenant-05/tenant-05",
    ]);
    imported.assert_no_changes();

    // Destroy removes the tenants' namespaces, then Flux.
    ws.destroy();
    assert!(kubectl_json(&sandbox, &["get", "ns", "tenant-00"]).is_none());
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
}

fn bad_sharding_scaling_and_tenant_inputs_point_at_the_attribute() {
    let sandbox = SandboxProcess::start(&[]);
    let bootstrap = |block: &str| {
        format!(
            "{}\nresource \"gitlabflux_flux_bootstrap\" \"b\" {{\n  distribution = {{ source = \"{}\" }}\n{block}\n}}\n",
            provider_block(&sandbox),
            fixture()
        )
    };
    let tenant = |namespaces: &str| {
        format!(
            "{}\nresource \"gitlabflux_flux_tenant\" \"t\" {{\n  name = \"team-a\"\n  namespaces = {namespaces}\n  source = {{ url = \"https://gitlab.example.com/a.git\" }}\n}}\n",
            provider_block(&sandbox)
        )
    };
    // Nested attributes: the detail names the attribute path (Terraform shows these at the
    // resource, see `assert_plan_error_at`).
    let nested = [
        (
            bootstrap("  sharding = {\n    shards = [\"s1\", \"s1\"]\n  }"),
            "Invalid shard",
            "sharding.shards[1]",
        ),
        (
            bootstrap("  sharding = {\n    shards = [\"ok\", \"Shard_1\"]\n  }"),
            "Invalid shard",
            "sharding.shards[1]",
        ),
        (
            bootstrap("  scaling = {\n    size = \"huge\"\n  }"),
            "Invalid value",
            "scaling.size",
        ),
        (
            bootstrap("  scaling = {\n    memory_limit = \"2GB\"\n  }"),
            "Invalid Flux option",
            "scaling.memory_limit",
        ),
    ];
    for (config, summary, path) in nested {
        let ws = Workspace::new();
        ws.write(&config);
        let error = ws.plan_error(summary);
        let detail = error["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(path), "{summary}: {detail}");
    }
    // Top-level attributes: Terraform places the error on the attribute's line.
    let ws = Workspace::new();
    ws.write(&tenant("[\"team-a\", \"flux-system\"]"));
    let error = ws.assert_plan_error_at("Invalid tenant namespace", "namespaces = ");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("namespaces[1]") && d.contains("Flux's own namespace")),
        "{error:#}"
    );
    let ws = Workspace::new();
    ws.write(&tenant("[\"team-a\"]").replace("name = \"team-a\"", "name = \"Team A\""));
    ws.assert_plan_error_at("Invalid Flux option", "name = ");
    // Nothing reached the cluster.
    assert!(kubectl_json(&sandbox, &["get", "ns", "flux-system"]).is_none());
    assert!(kubectl_json(&sandbox, &["get", "ns", "team-a"]).is_none());
}

on_both_terraforms!(
    shards_tenants_placement_and_shard_removal,
    bad_sharding_scaling_and_tenant_inputs_point_at_the_attribute,
);
