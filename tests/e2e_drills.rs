//! Crash drills for agent token rotation, through the real terraform against the sandbox
//! with simulated controllers and `--rollout-delay` (a restarted agentk keeps running its old
//! token for a second, so revoking that token early would be seen).
//!
//! Each drill breaks one step of a rotation, by a fault rule with a count (an error before
//! the step, or its answer lost or replaced after it) or by `kill -9` of Terraform and the
//! provider while the step's request is held, then applies again. Asserted from the
//! sandbox's state: the Secret always holds an active token; no token is revoked while pods
//! run it (the GitLab emulator records any such revocation); afterwards exactly one active
//! token, the one in the Secret and in state, and a second plan is clean.

mod common;

use common::agents::{active_tokens, agent_state, fleet_config, fleet_config_with, one_line};
use common::{SandboxProcess, Workspace, block_on, kubectl, kubectl_json};
use serde_json::{Value, json};

const TOKEN_CREATE: &str = "POST /api/v4/projects/{id}/cluster_agents/{agent_id}/tokens";
const TOKENS: &str = "/api/v4/projects/*/cluster_agents/*/tokens";
const AGENTK: &str = "/apis/apps/v1/namespaces/gitlab-agent/deployments/gitlab-agent";
const TOKEN_SECRET: &str = "/api/v1/namespaces/gitlab-agent/secrets/gitlab-agent-token";

/// A sandbox whose rollouts take a second, with the fleet applied at trigger `v1`.
struct Drill {
    sandbox: SandboxProcess,
    ws: Workspace,
}

impl Drill {
    fn new() -> Self {
        let sandbox = SandboxProcess::start(&["--simulate-controllers", "--rollout-delay", "1s"]);
        let ws = Workspace::new();
        ws.write(&fleet_config(&sandbox, "v1"));
        ws.apply();
        let drill = Drill { sandbox, ws };
        drill.assert_converged("first apply");
        drill
    }

    fn agent(&self) -> Value {
        agent_state(&self.sandbox, "prod").expect("agent registered")
    }

    fn token_creates(&self) -> u64 {
        self.sandbox.stats()["gitlab"][TOKEN_CREATE]
            .as_u64()
            .unwrap_or(0)
    }

    /// The id of the token the Secret holds, by the label written with its value.
    fn secret_token_id(&self) -> Option<i64> {
        let secret = kubectl_json(
            &self.sandbox,
            &["get", "secret", "-n", "gitlab-agent", "gitlab-agent-token"],
        )?;
        secret["metadata"]["labels"]["gitlabflux.io/agent-token-id"]
            .as_str()?
            .parse()
            .ok()
    }

    /// What must hold at every moment, also right after a failure or a kill.
    fn assert_safe(&self, context: &str) {
        let state = self.sandbox.gitlab_state();
        assert_eq!(
            state["revoked_while_running"],
            json!([]),
            "{context}: a token was revoked while agentk ran it"
        );
        let active: Vec<i64> = active_tokens(&self.agent())
            .iter()
            .filter_map(|t| t["id"].as_i64())
            .collect();
        assert!(active.len() <= 2, "{context}: {active:?}");
        let held = self.secret_token_id();
        assert!(
            held.is_some_and(|id| active.contains(&id)),
            "{context}: the Secret holds {held:?}, active are {active:?}"
        );
    }

    /// After a successful apply: one active token, in the Secret and in state; no changes.
    fn assert_converged(&self, context: &str) {
        self.assert_safe(context);
        let active = active_tokens(&self.agent());
        assert_eq!(active.len(), 1, "{context}: {active:?}");
        let id = active[0]["id"].as_i64();
        assert_eq!(self.secret_token_id(), id, "{context}: Secret");
        let state = self.ws.resource("gitlabflux_agent_token.prod");
        assert_eq!(state["token_id"].as_i64(), id, "{context}: state");
        assert_eq!(state["status"], "active", "{context}");
        self.ws.assert_no_changes();
    }

    /// Applies `trigger` with `rules` in force: the apply must fail; then the faults are
    /// lifted and the next apply must finish the rotation, creating no further token.
    fn fail_then_converge(&self, trigger: &str, rules: Value, context: &str) {
        let creates = self.token_creates();
        self.sandbox.set_faults(rules);
        self.ws.write(&fleet_config(&self.sandbox, trigger));
        let out = self.ws.run(&["apply", "-auto-approve", "-no-color"]);
        assert!(
            !out.success(),
            "{context}: the fault did not fail the apply"
        );
        self.sandbox.set_faults(json!([]));
        self.assert_safe(&format!("{context}, after the failure"));
        self.ws.apply();
        self.assert_converged(&format!("{context}, after the retry"));
        assert_eq!(
            self.token_creates(),
            creates + 1,
            "{context}: one rotation, one new token"
        );
    }

    /// Kills the apply of `trigger` while `rule` holds its request, then applies again.
    fn kill_then_converge(&self, trigger: &str, rule: Value, context: &str) {
        let creates = self.token_creates();
        let hung = self.sandbox.faults_injected("-> hang");
        self.sandbox.set_faults(json!([rule]));
        self.ws.write(&fleet_config(&self.sandbox, trigger));
        self.ws
            .apply_killed_when(|| self.sandbox.faults_injected("-> hang") > hung);
        self.sandbox.set_faults(json!([]));
        self.assert_safe(&format!("{context}, after the kill"));
        self.ws.apply();
        self.assert_converged(&format!("{context}, after the retry"));
        let made = self.token_creates() - creates;
        assert!(
            (1..=2).contains(&made),
            "{context}: {made} tokens created for one rotation"
        );
    }
}

fn rule(emulator: &str, method: &str, path: &str, fault: Value) -> Value {
    let mut rule = json!({ "emulator": emulator, "method": method, "path": path });
    if let (Some(rule), Some(fault)) = (rule.as_object_mut(), fault.as_object()) {
        rule.extend(fault.clone());
    }
    rule
}

fn a_rotation_failing_after_delivery_is_finished_by_the_next_apply() {
    let drill = Drill::new();
    let token = format!("{TOKENS}/*");
    let cases = [
        (
            "500 on every token DELETE",
            rule(
                "gitlab",
                "DELETE",
                &token,
                json!({"fault": "status", "status": 500}),
            ),
        ),
        (
            "DELETE carried out, its answer lost",
            rule(
                "gitlab",
                "DELETE",
                &token,
                json!({"fault": "reset", "when": "after"}),
            ),
        ),
        (
            "429 on every token GET (confirmation)",
            rule(
                "gitlab",
                "GET",
                &token,
                json!({"fault": "status", "status": 429, "retry_after": 0}),
            ),
        ),
        (
            "500 on every agentk PATCH (restart)",
            rule(
                "kube",
                "PATCH",
                AGENTK,
                json!({"fault": "status", "status": 500}),
            ),
        ),
    ];
    for (n, (context, fault)) in cases.into_iter().enumerate() {
        drill.fail_then_converge(&format!("fail-{n}"), json!([fault]), context);
    }
}

fn a_kill_at_each_step_of_a_rotation_converges() {
    let drill = Drill::new();
    let token = format!("{TOKENS}/*");
    let hang = |when: &str| json!({"fault": "hang", "when": when});
    let cases = [
        (
            "killed sending the create",
            rule("gitlab", "POST", TOKENS, hang("before")),
        ),
        (
            "killed after the create, its value lost",
            rule("gitlab", "POST", TOKENS, hang("after")),
        ),
        (
            "killed after the Secret write",
            rule("kube", "PATCH", TOKEN_SECRET, hang("after")),
        ),
        (
            "killed restarting agentk",
            rule("kube", "PATCH", AGENTK, hang("before")),
        ),
        (
            "killed confirming the new token",
            rule("gitlab", "GET", &token, hang("before")),
        ),
        (
            "killed revoking the old token",
            rule("gitlab", "DELETE", &token, hang("before")),
        ),
        (
            "killed after revoking the old token",
            rule("gitlab", "DELETE", &token, hang("after")),
        ),
    ];
    for (n, (context, fault)) in cases.into_iter().enumerate() {
        drill.kill_then_converge(&format!("kill-{n}"), fault, context);
    }
}

fn a_lost_create_answer_leaves_no_orphan() {
    let drill = Drill::new();
    let creates = drill.token_creates();
    drill.sandbox.set_faults(json!([rule(
        "gitlab",
        "POST",
        TOKENS,
        json!({"fault": "reset", "when": "after", "times": 1}),
    )]));
    drill.ws.write(&fleet_config(&drill.sandbox, "v2"));
    // The lost token is recognised as this resource's own, revoked, and created again, all
    // in the same apply.
    drill.ws.apply();
    drill.assert_converged("lost create answer");
    assert_eq!(drill.token_creates(), creates + 2);
    let agent = drill.agent();
    let tokens = agent["tokens"].as_array().expect("tokens");
    let revoked_unused = tokens
        .iter()
        .filter(|t| t["status"] == "revoked" && t["last_used_at"].is_null())
        .count();
    assert_eq!(revoked_unused, 1, "the orphan was revoked: {tokens:?}");
}

fn an_unconfirmed_rotation_is_finished_not_started_again() {
    let drill = Drill::new();
    let sandbox = &drill.sandbox;
    let old_id = active_tokens(&drill.agent())[0]["id"].clone();
    // A workload that does not mount the Secret: restarting it never puts the new token to use.
    let decoy = drill.ws.path().join("decoy.yaml");
    std::fs::write(
        &decoy,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: decoy, namespace: gitlab-agent}\n\
         spec:\n  selector: {matchLabels: {app: decoy}}\n  template:\n    metadata: {labels: {app: decoy}}\n\
         \x20   spec: {containers: [{name: c, image: busybox}]}\n",
    )
    .expect("decoy manifest");
    kubectl(
        sandbox,
        &["apply", "--server-side", "-f", &decoy.display().to_string()],
    );
    let creates = drill.token_creates();
    drill
        .ws
        .write(&fleet_config_with(sandbox, "v2", "\"decoy\"", "3s"));
    let out = drill.ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    assert!(
        out.text().contains("New agent token not confirmed in use"),
        "{}",
        out.text()
    );
    drill.assert_safe("unconfirmed");
    let active = active_tokens(&drill.agent());
    assert!(active.iter().any(|t| t["id"] == old_id), "old token kept");
    // State names the delivered successor, to be finished.
    let state = drill.ws.resource("gitlabflux_agent_token.prod");
    assert_eq!(state["status"], "rotating");
    assert_eq!(state["token_id"].as_i64(), drill.secret_token_id());

    // Restarting the right workload finishes that rotation: no third token.
    drill.ws.write(&fleet_config(sandbox, "v2"));
    drill.ws.apply();
    drill.assert_converged("finished");
    assert_eq!(drill.token_creates(), creates + 1);
}

/// Creates a token outside Terraform, as someone with the GitLab UI would.
fn foreign_token(sandbox: &SandboxProcess, agent_id: i64, name: &str) -> i64 {
    let created: Value = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                &format!("/projects/fleet%2Fagents/cluster_agents/{agent_id}/tokens"),
            )
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("create token")
            .json()
            .await
    })
    .expect("token JSON");
    created["id"].as_i64().expect("token id")
}

fn foreign_tokens_are_displaced_only_with_the_opt_in() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    let fleet = fleet_config(&sandbox, "v1");
    // The agent and agentk first, then two tokens made by hand.
    let token_block = fleet
        .find("resource \"gitlabflux_agent_token\"")
        .expect("token block");
    ws.write(&fleet[..token_block]);
    ws.apply();
    let agent_id = agent_state(&sandbox, "prod").expect("agent")["id"]
        .as_i64()
        .expect("agent id");
    let foreign = [
        foreign_token(&sandbox, agent_id, "laptop"),
        foreign_token(&sandbox, agent_id, "ci"),
    ];

    ws.write(&fleet);
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = one_line(&out.text());
    assert!(
        text.contains("Agent has two active tokens this resource did not create")
            && text.contains(&format!("token {} \"laptop\"", foreign[0]))
            && text.contains("displace_foreign_tokens"),
        "{text}"
    );
    let active: Vec<i64> = active_tokens(&agent_state(&sandbox, "prod").expect("agent"))
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    assert_eq!(active, foreign, "nothing revoked, nothing created");

    ws.write(&fleet.replace(
        "  name     = \"prod\"\n  kubernetes_secret",
        "  name     = \"prod\"\n  displace_foreign_tokens = true\n  kubernetes_secret",
    ));
    let out = ws.apply();
    let text = one_line(&out.text());
    assert!(
        text.contains("Revoked an agent token this resource did not create"),
        "{text}"
    );
    let active = active_tokens(&agent_state(&sandbox, "prod").expect("agent"));
    assert_eq!(active.len(), 2, "one foreign token made room: {active:?}");
    assert!(
        active.iter().any(|t| t["id"].as_i64() == Some(foreign[1])),
        "the other foreign token is left alone"
    );
    ws.assert_no_changes();
}

fn a_kill_while_registering_the_agent_converges_to_one_agent() {
    for when in ["before", "after"] {
        let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
        let ws = Workspace::new();
        ws.write(&fleet_config(&sandbox, "v1"));
        sandbox.set_faults(json!([rule(
            "gitlab",
            "POST",
            "/api/v4/projects/*/cluster_agents",
            json!({"fault": "hang", "when": when}),
        )]));
        ws.apply_killed_when(|| sandbox.faults_injected("-> hang") > 0);
        sandbox.set_faults(json!([]));
        // The configuration file went first, so an agent registered by the killed run is
        // recognised as ours and taken over, not refused as foreign.
        ws.apply();
        let agents: Vec<Value> = sandbox.gitlab_state()["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter(|a| a["name"] == "prod")
            .cloned()
            .collect();
        assert_eq!(agents.len(), 1, "kill {when} the create: {agents:?}");
        assert_eq!(
            ws.resource("gitlabflux_agent.prod")["agent_id"],
            agents[0]["id"],
            "kill {when} the create"
        );
        ws.assert_no_changes();
    }
}

on_both_terraforms!(
    a_rotation_failing_after_delivery_is_finished_by_the_next_apply,
    a_kill_at_each_step_of_a_rotation_converges,
    a_lost_create_answer_leaves_no_orphan,
    an_unconfirmed_rotation_is_finished_not_started_again,
    foreign_tokens_are_displaced_only_with_the_opt_in,
    a_kill_while_registering_the_agent_converges_to_one_agent,
);
