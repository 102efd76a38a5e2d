#!/usr/bin/env bash
# Kill drill: rotates an agent token N times (default 50) against the sandbox, killing each
# rotation with SIGKILL at a random moment (alternately the whole process group, Terraform
# and the provider, or the provider alone), then applies again and checks what
# DESIGN.md section 6 promises:
#   - right after the kill, the Secret holds an active token and no token was revoked while
#     agentk's pods ran it (the sandbox runs with --rollout-delay, so such a window is seen);
#   - after the retry, exactly one active token, the one in the Secret and in state; a second
#     plan is clean; no token was left behind.
# Prints a table of the outcomes. Not run in CI (it takes minutes and is random by design).
# Needs terraform, kubectl, curl and jq.
#
# usage: scripts/kill-drill.sh [KILLS] [ROLLOUT_DELAY]
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${1:-50}
rollout_delay=${2:-1s}
for tool in terraform kubectl curl jq; do
  command -v "$tool" >/dev/null || { echo "the kill drill needs $tool on PATH" >&2; exit 1; }
done

cargo build --locked --quiet --bin terraform-provider-gitlabflux --bin gitlabflux-sandbox

. scripts/sandbox.sh
start_sandbox --simulate-controllers --rollout-delay "$rollout_delay"
admin=$(jq -r .admin_url <<<"$info")
kubeconfig=$(jq -r .kubeconfig <<<"$info")

use_local_provider
mkdir "$work/tf"
cat >"$work/tf/main.tf" <<HCL
terraform {
  required_providers {
    gitlabflux = { source = "gitlabflux/gitlabflux" }
  }
}
variable "trigger" { type = string }
provider "gitlabflux" {
  gitlab     = { base_url = "$(jq -r .gitlab_url <<<"$info")", token = "$(jq -r .gitlab_token <<<"$info")" }
  kubernetes = { config_path = "$kubeconfig" }
}
resource "gitlabflux_agent" "drill" {
  project = "fleet/agents"
  name    = "drill"
}
resource "gitlabflux_agent_install" "drill" {
  token_secret = { name = "gitlab-agent-token" }
}
resource "gitlabflux_agent_token" "drill" {
  project  = gitlabflux_agent.drill.project
  agent_id = gitlabflux_agent.drill.agent_id
  name     = "drill"
  kubernetes_secret = {
    namespace = gitlabflux_agent_install.drill.namespace
    name      = "gitlab-agent-token"
  }
  restart  = [{ namespace = gitlabflux_agent_install.drill.namespace, name = gitlabflux_agent_install.drill.name }]
  rotation = { trigger = var.trigger, confirm_timeout = "60s" }
}
HCL

tf() { terraform -chdir="$work/tf" "$@"; }
active_ids() {
  curl -sf "$admin/gitlab/state" |
    jq -c '[.agents[] | select(.name == "drill") | .tokens[] | select(.status == "active") | .id]'
}
windows() { curl -sf "$admin/gitlab/state" | jq -c '.revoked_while_running'; }
creates() {
  curl -sf "$admin/stats" |
    jq '.gitlab["POST /api/v4/projects/{id}/cluster_agents/{agent_id}/tokens"] // 0'
}
held_id() {
  kubectl --kubeconfig "$kubeconfig" get secret -n gitlab-agent gitlab-agent-token -o json 2>/dev/null |
    jq -r '.metadata.labels["gitlabflux.io/agent-token-id"] // "none"'
}

echo "==> First apply"
start=$(date +%s%N)
tf apply -auto-approve -var trigger=t0 >/dev/null
echo "==> Timing one uninterrupted rotation"
start=$(date +%s%N)
tf apply -auto-approve -var trigger=t1 >/dev/null
rotation_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "    one rotation took ${rotation_ms} ms; kills land uniformly in [0, ${rotation_ms}] ms"

mid_apply=0 group_kills=0 provider_kills=0 converged=0 unsafe=0 windows_seen=0
orphans=0 extra_tokens=0 unclean_plans=0 retries_total=0
for i in $(seq 1 "$kills"); do
  before=$(creates)
  delay_ms=$(( RANDOM * 32768 + RANDOM ))
  delay_ms=$(( delay_ms % (rotation_ms + 1) ))
  setsid terraform -chdir="$work/tf" apply -auto-approve -var "trigger=k$i" >/dev/null 2>&1 &
  tf_pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -0 "$tf_pid" 2>/dev/null; then
    mid_apply=$((mid_apply + 1))
    if (( i % 2 )); then
      kill -KILL -- "-$tf_pid" 2>/dev/null || true
      group_kills=$((group_kills + 1))
    else
      provider=$(pgrep -f -P "$tf_pid" terraform-provider-gitlabflux || true)
      if [ -n "$provider" ]; then
        kill -KILL $provider 2>/dev/null || true
        provider_kills=$((provider_kills + 1))
      else
        kill -KILL -- "-$tf_pid" 2>/dev/null || true
        group_kills=$((group_kills + 1))
      fi
    fi
  fi
  wait "$tf_pid" 2>/dev/null || true
  # Whatever a killed provider left running in the group goes too.
  pkill -KILL -g "$tf_pid" 2>/dev/null || true

  ids=$(active_ids)
  held=$(held_id)
  if ! jq -e --arg h "$held" 'map(tostring) | index($h) != null' <<<"$ids" >/dev/null; then
    unsafe=$((unsafe + 1))
    echo "    kill $i (${delay_ms} ms): the Secret holds $held, active are $ids"
  fi

  retries=0
  until tf apply -auto-approve -var "trigger=k$i" >"$work/retry.log" 2>&1; do
    retries=$((retries + 1))
    if (( retries >= 3 )); then
      echo "    kill $i: the retry keeps failing:"; tail -n 20 "$work/retry.log"; break
    fi
  done
  retries_total=$((retries_total + retries + 1))
  ids=$(active_ids)
  held=$(held_id)
  state_id=$(tf show -json | jq -r '.values.root_module.resources[] | select(.address == "gitlabflux_agent_token.drill") | .values.token_id')
  if [ "$(jq length <<<"$ids")" = 1 ] && [ "$(jq -r '.[0]' <<<"$ids")" = "$held" ] && [ "$held" = "$state_id" ]; then
    converged=$((converged + 1))
  else
    orphans=$((orphans + 1))
    echo "    kill $i: after the retry active $ids, Secret $held, state $state_id"
  fi
  if ! tf plan -detailed-exitcode -var "trigger=k$i" >/dev/null 2>&1; then
    unclean_plans=$((unclean_plans + 1))
  fi
  made=$(( $(creates) - before ))
  (( made > 1 )) && extra_tokens=$((extra_tokens + made - 1))
  if [ "$(windows)" != "[]" ]; then
    windows_seen=$((windows_seen + 1))
    echo "    kill $i: tokens revoked while pods ran them: $(windows)"
  fi
done

echo
echo "| kills | landed mid-apply | whole group | provider only | retries converged | Secret without active token | revoked while running | left behind | unclean second plans | extra tokens created |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "| $kills | $mid_apply | $group_kills | $provider_kills | $converged | $unsafe | $(windows | jq length) | $orphans | $unclean_plans | $extra_tokens |"
[ "$unsafe" = 0 ] && [ "$(windows)" = "[]" ] && [ "$converged" = "$kills" ] && [ "$unclean_plans" = 0 ]
