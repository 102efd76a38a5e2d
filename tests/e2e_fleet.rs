//! `examples/fleet` as its GitLab CI pipeline runs it, against a ten-cluster sandbox: the
//! provider installed from a filesystem mirror, `terraform init` with the http backend on
//! GitLab-managed state, `plan -out` then `apply` of that plan. Each cluster gets its own
//! agentk, Flux and tenants; a drift in one cluster plans a repair of that cluster only; a
//! fleet-wide token rotation is confirmed by the agentk of every cluster; the state lives in the
//! GitLab emulator and holds no cluster credential.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::agents::active_tokens;
use common::{SandboxProcess, Workspace, block_on, copy_dir, flux_fixture};
use serde_json::Value;

const CLUSTERS: usize = 10;
const STATE_NAME: &str = "fleet-eu";
const TENANTS: [&str; 2] = ["team-a", "team-b"];

struct Fleet {
    sandbox: SandboxProcess,
    ws: Workspace,
}

impl Fleet {
    /// The sandbox fleet and the example, initialised as the CI job initialises it.
    fn start() -> Self {
        let sandbox = SandboxProcess::start(&[
            "--clusters",
            &CLUSTERS.to_string(),
            "--simulate-controllers",
        ]);
        let mut ws = Workspace::with_provider_mirror();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet"),
            ws.path(),
        );
        ws.set_env("GITLAB_BASE_URL", &sandbox.url("gitlab_url"));
        ws.set_env("GITLAB_TOKEN", &sandbox.url("gitlab_token"));
        let fleet = Self { sandbox, ws };
        fleet.write_vars("");
        let address = fleet.state_address();
        let backend = [
            format!("-backend-config=address={address}"),
            format!("-backend-config=lock_address={address}/lock"),
            format!("-backend-config=unlock_address={address}/lock"),
            "-backend-config=username=gitlab-ci-token".to_string(),
            format!(
                "-backend-config=password={}",
                fleet.sandbox.url("gitlab_token")
            ),
            "-backend-config=lock_method=POST".to_string(),
            "-backend-config=unlock_method=DELETE".to_string(),
            "-backend-config=retry_wait_min=1".to_string(),
        ];
        let mut init = vec!["init", "-input=false", "-no-color"];
        init.extend(backend.iter().map(String::as_str));
        fleet.ws.ok(&init);
        fleet
    }

    fn state_address(&self) -> String {
        format!(
            "{}/api/v4/projects/fleet%2Fgitops/terraform/state/{STATE_NAME}",
            self.sandbox.url("gitlab_url")
        )
    }

    fn names(&self) -> Vec<String> {
        (1..=CLUSTERS).map(|i| format!("cluster-{i}")).collect()
    }

    /// The group's variables, as `groups/<group>.tfvars` and the job's File variable give them.
    fn write_vars(&self, token_trigger: &str) {
        let gitlab = self.sandbox.url("gitlab_url");
        let clusters: Vec<String> = self
            .names()
            .iter()
            .map(|n| format!("  {n:?} = {{ config_context = {n:?} }}"))
            .collect();
        let tenants: Vec<String> = TENANTS
            .iter()
            .map(|t| format!("  {t:?} = \"{gitlab}/{t}/deploy.git\""))
            .collect();
        let vars = format!(
            "kubeconfig        = {kubeconfig:?}\ngitops_url        = \"{gitlab}/fleet/gitops.git\"\n\
             flux_distribution = {flux:?}\ntoken_trigger     = {token_trigger:?}\n\
             clusters = {{\n{clusters}\n}}\ntenants = {{\n{tenants}\n}}\n",
            kubeconfig = self.sandbox.url("kubeconfig"),
            flux = flux_fixture(),
            clusters = clusters.join("\n"),
            tenants = tenants.join("\n"),
        );
        std::fs::write(self.ws.path().join("fleet.auto.tfvars"), vars).expect("write tfvars");
    }

    /// `plan -out`, then `apply` of that plan: the pipeline's two jobs.
    fn plan_and_apply(&self) {
        self.ws
            .ok(&["plan", "-input=false", "-no-color", "-out=plan.cache"]);
        self.ws
            .ok(&["apply", "-input=false", "-no-color", "plan.cache"]);
    }

    /// The state as GitLab keeps it.
    fn state_text(&self) -> String {
        let get = self.sandbox.gitlab(
            reqwest::Method::GET,
            &format!("/projects/fleet%2Fgitops/terraform/state/{STATE_NAME}"),
        );
        block_on(async { get.send().await.expect("GET state").text().await }).expect("state")
    }

    fn objects(&self, cluster: &str) -> Vec<Value> {
        let dump = block_on(
            self.sandbox
                .admin_json(&format!("/kube/objects?cluster={cluster}")),
        );
        dump["items"].as_array().cloned().unwrap_or_default()
    }

    /// The agent of each cluster (the agent is named after its cluster).
    fn agents(&self) -> BTreeMap<String, Value> {
        let state = self.sandbox.gitlab_state();
        state["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap_or_default().to_string(),
                    a.clone(),
                )
            })
            .collect()
    }
}

fn has(objects: &[Value], kind: &str, namespace: &str, name: &str) -> bool {
    objects.iter().any(|o| {
        o["kind"] == kind
            && o["metadata"]["name"] == name
            && o["metadata"]["namespace"].as_str().unwrap_or_default() == namespace
    })
}

/// The cluster tokens of the sandbox's kubeconfig.
fn cluster_tokens(sandbox: &SandboxProcess) -> Vec<String> {
    let text = std::fs::read_to_string(sandbox.url("kubeconfig")).expect("kubeconfig");
    let config: Value = serde_yaml_ng::from_str(&text).expect("kubeconfig YAML");
    config["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["user"]["token"].as_str().map(String::from))
        .collect()
}

fn the_fleet_example_runs_ten_clusters_from_gitlab_managed_state() {
    let fleet = Fleet::start();
    fleet.plan_and_apply();

    // The state is in GitLab, not on disk, and holds no cluster credential.
    assert!(!fleet.ws.path().join("terraform.tfstate").exists());
    let state = fleet.state_text();
    let parsed: Value = serde_json::from_str(&state).expect("state JSON");
    let agents_in_state = parsed["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["type"] == "gitlabflux_agent")
        .map(|r| r["instances"].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    assert_eq!(agents_in_state, CLUSTERS);
    let tokens = cluster_tokens(&fleet.sandbox);
    assert_eq!(tokens.len(), CLUSTERS);
    for token in &tokens {
        assert!(!state.contains(token.as_str()), "a cluster token in state");
    }
    assert!(!state.contains(&fleet.sandbox.url("gitlab_token")));

    // Every cluster holds its own agentk, Flux (with its shards) and tenants.
    for cluster in fleet.names() {
        let objects = fleet.objects(&cluster);
        assert!(
            has(&objects, "Secret", "gitlab-agent", "gitlab-agent-token"),
            "{cluster}: agent token Secret"
        );
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "Deployment" && o["metadata"]["namespace"] == "gitlab-agent"),
            "{cluster}: agentk"
        );
        for controller in ["source-controller", "source-controller-shard1"] {
            assert!(
                has(&objects, "Deployment", "flux-system", controller),
                "{cluster}: {controller}"
            );
        }
        for tenant in TENANTS {
            assert!(
                has(&objects, "Namespace", "", tenant),
                "{cluster}: {tenant}"
            );
        }
    }
    let agents = fleet.agents();
    for cluster in fleet.names() {
        let active = active_tokens(&agents[&cluster]);
        assert_eq!(active.len(), 1, "{cluster}: {active:?}");
        assert!(
            !active[0]["last_used_at"].is_null(),
            "{cluster}: its agentk runs its token"
        );
    }
    let stats = fleet.sandbox.stats();
    let reached = stats["kube_clusters"].as_object().map_or(0, |c| c.len());
    assert_eq!(reached, CLUSTERS, "each cluster through its own context");

    // A refresh reads each cluster by kind (one list per kind, shared by the bootstrap, the
    // tenants and the install), not object by object (76 requests a cluster before): 12
    // lists, discovery of the two Flux groups, and the token Secret, read once for the token
    // and the install.
    let reset = fleet.sandbox.admin(reqwest::Method::DELETE, "/stats");
    block_on(async { reset.send().await }).expect("reset stats");
    fleet.ws.assert_no_changes();
    let stats = fleet.sandbox.stats();
    for (cluster, routes) in stats["kube_clusters"].as_object().expect("per cluster") {
        let requests: u64 = routes
            .as_object()
            .map_or(0, |r| r.values().filter_map(Value::as_u64).sum());
        assert!(
            requests <= 15,
            "{cluster}: {requests} Kubernetes requests in one refresh: {routes}"
        );
    }
    // The agents' configuration files are checked against one tree listing, not fetched;
    // their tokens come from one GraphQL query, not a list per agent: at most five GitLab
    // requests for the whole fleet.
    let gitlab = &stats["gitlab"];
    assert_eq!(
        gitlab["GET /api/v4/projects/{id}/repository/tree"], 1,
        "{gitlab}"
    );
    assert!(
        gitlab
            .get("GET /api/v4/projects/{id}/repository/files/{file_path}")
            .is_none(),
        "{gitlab}"
    );
    assert_eq!(gitlab["POST /api/graphql"], 1, "{gitlab}");
    assert!(
        gitlab
            .get("GET /api/v4/projects/{id}/cluster_agents/{agent_id}/tokens")
            .is_none(),
        "{gitlab}"
    );
    // Terraform's own state backend requests are not the provider's.
    let total: u64 = gitlab.as_object().map_or(0, |routes| {
        routes
            .iter()
            .filter(|(route, _)| !route.contains("/terraform/state/"))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    });
    assert!(
        total <= 5,
        "{total} GitLab requests in one refresh: {gitlab}"
    );

    // A configuration file edited in GitLab plans the repair of that agent only.
    let edit = serde_json::json!({
        "branch": "main", "commit_message": "edit by hand",
        "actions": [{ "action": "update", "file_path": ".gitlab/agents/cluster-2/config.yaml",
                      "content": "ci_access: {}\n" }],
    });
    let commit = fleet.sandbox.gitlab(
        reqwest::Method::POST,
        "/projects/fleet%2Fagents/repository/commits",
    );
    let committed = block_on(async { commit.json(&edit).send().await }).expect("commit");
    assert_eq!(committed.status(), 201);
    let changes = fleet.ws.planned_changes();
    assert_eq!(
        changes,
        vec![(
            "module.cluster[\"cluster-2\"].gitlabflux_agent.this".to_string(),
            vec!["update".to_string()]
        )]
    );
    fleet.plan_and_apply();

    // A drift in one cluster plans a repair of that cluster only.
    let deleted =
        fleet
            .sandbox
            .kubectl()
            .ok(&["--context", "cluster-4", "delete", "namespace", "team-b"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let changes = fleet.ws.planned_changes();
    assert!(!changes.is_empty(), "the drift is seen");
    for (address, _) in &changes {
        assert!(
            address.starts_with("module.cluster[\"cluster-4\"]."),
            "only cluster-4 is repaired: {changes:?}"
        );
    }
    fleet.plan_and_apply();
    assert!(has(&fleet.objects("cluster-4"), "Namespace", "", "team-b"));
    fleet.ws.assert_no_changes();

    // A fleet-wide rotation: every cluster's agentk confirms its new token.
    let before: BTreeMap<String, Value> = fleet
        .agents()
        .into_iter()
        .map(|(name, agent)| (name, active_tokens(&agent)[0]["id"].clone()))
        .collect();
    fleet.write_vars("2026-12");
    let changes = fleet.ws.planned_changes();
    assert_eq!(
        changes.len(),
        CLUSTERS,
        "one token per cluster: {changes:?}"
    );
    assert!(
        changes
            .iter()
            .all(|(address, _)| address.ends_with("gitlabflux_agent_token.this")),
        "{changes:?}"
    );
    fleet.plan_and_apply();
    let agents = fleet.agents();
    for cluster in fleet.names() {
        let active = active_tokens(&agents[&cluster]);
        assert_eq!(active.len(), 1, "{cluster}: the old token is revoked");
        assert_ne!(active[0]["id"], before[&cluster], "{cluster}: a new token");
        assert!(
            !active[0]["last_used_at"].is_null(),
            "{cluster}: its agentk confirmed the new token"
        );
    }
    let windows = &fleet.sandbox.gitlab_state()["revoked_while_running"];
    assert_eq!(windows.as_array().map(Vec::len), Some(0), "{windows}");
    fleet.ws.assert_no_changes();
}

on_both_terraforms!(the_fleet_example_runs_ten_clusters_from_gitlab_managed_state,);
