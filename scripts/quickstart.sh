#!/usr/bin/env bash
# Quickstart: build the provider, run `terraform apply` of examples/quickstart with the local
# build (through dev_overrides, no registry involved), show the result, and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v terraform >/dev/null 2>&1; then
  echo "The quickstart needs the terraform CLI (1.11 or later) on PATH." >&2
  exit 1
fi

echo "==> Building the provider"
cargo build --locked --bin terraform-provider-gitlabflux

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/cli.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "gitlabflux/gitlabflux" = "$PWD/target/debug"
  }
  direct {}
}
TFRC
cp examples/quickstart/*.tf "$work/"
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0

echo "==> terraform apply (examples/quickstart)"
terraform -chdir="$work" apply -auto-approve -compact-warnings
echo "==> Result"
terraform -chdir="$work" output
