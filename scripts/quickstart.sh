#!/usr/bin/env bash
# Quickstart: build the provider and the sandbox, start the sandbox (local GitLab and
# Kubernetes API emulators), run `terraform apply` of examples/quickstart against it with the
# local build (through dev_overrides, no registry involved), show the result, and tear down.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v terraform >/dev/null 2>&1; then
  echo "The quickstart needs the terraform CLI (1.11 or later) on PATH." >&2
  exit 1
fi

echo "==> Building the provider and the sandbox"
cargo build --locked --bin terraform-provider-gitlabflux --bin gitlabflux-sandbox

. scripts/sandbox.sh
echo "==> Starting the sandbox"
start_sandbox --simulate-controllers --state-dir "$work/sandbox"
field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" <<<"$info"; }
echo "    GitLab API:     $(field gitlab_url)/api/v4"
echo "    Kubernetes API: $(field kube_url) (kubeconfig $(field kubeconfig))"
echo "    Admin API:      $(field admin_url)"

use_local_provider
mkdir "$work/tf"
cp examples/quickstart/*.tf "$work/tf/"
# Nothing can be downloaded here: Flux comes from a local distribution (FLUX_DISTRIBUTION, a
# file:// path), by default the v2.9.4 manifests beside this repository when present.
fixture="$PWD/../shared/fixtures/flux/v2.9.4/gotk-components.yaml"
if [ -z "${FLUX_DISTRIBUTION:-}" ] && [ -f "$fixture" ]; then
  FLUX_DISTRIBUTION="file://$fixture"
fi
if [ -z "${FLUX_DISTRIBUTION:-}" ]; then
  echo "    (no FLUX_DISTRIBUTION given: skipping the Flux bootstrap)"
fi
export TF_VAR_flux_distribution="${FLUX_DISTRIBUTION:-}"
export TF_VAR_gitlab_url TF_VAR_gitlab_token TF_VAR_kubeconfig
TF_VAR_gitlab_url=$(field gitlab_url)
TF_VAR_gitlab_token=$(field gitlab_token)
TF_VAR_kubeconfig=$(field kubeconfig)

echo "==> terraform apply (examples/quickstart): agent, agentk install, token, Flux"
terraform -chdir="$work/tf" apply -auto-approve -compact-warnings
echo "==> Rotating the agent token (rotation_trigger = second)"
terraform -chdir="$work/tf" apply -auto-approve -compact-warnings -var rotation_trigger=second
echo "==> Result"
terraform -chdir="$work/tf" output
echo "==> In the cluster"
kubectl --kubeconfig "$(field kubeconfig)" get deploy,secret,sa -n gitlab-agent 2>/dev/null || true
kubectl --kubeconfig "$(field kubeconfig)" get deploy,gitrepositories,kustomizations -n flux-system 2>/dev/null || true
echo "==> Tearing down"
terraform -chdir="$work/tf" destroy -auto-approve -compact-warnings -var rotation_trigger=second >/dev/null
