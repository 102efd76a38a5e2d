# Sourced by the scripts that drive the sandbox: a scratch directory ($work) removed on exit,
# and `start_sandbox ARGS...`, which starts `gitlabflux-sandbox serve ARGS...` with its
# standard input held open (closing it on exit stops the sandbox) and sets $info to the JSON
# line it prints once ready; `use_local_provider`, which points Terraform at the debug build
# of the provider through dev_overrides. Needs the debug builds.

work=$(mktemp -d)
sandbox_pid=""
cleanup() {
  # Closing the sandbox's stdin stops it; then remove the scratch directory.
  exec 3>&- 2>/dev/null || true
  if [ -n "$sandbox_pid" ]; then wait "$sandbox_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_sandbox() {
  mkfifo "$work/sandbox-stdin"
  target/debug/gitlabflux-sandbox serve "$@" <"$work/sandbox-stdin" >"$work/sandbox.json" &
  sandbox_pid=$!
  exec 3>"$work/sandbox-stdin"
  for _ in $(seq 1 100); do
    [ -s "$work/sandbox.json" ] && break
    sleep 0.1
  done
  [ -s "$work/sandbox.json" ] || { echo "the sandbox did not start" >&2; exit 1; }
  info=$(head -n 1 "$work/sandbox.json")
}

use_local_provider() {
  cat >"$work/cli.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "gitlabflux/gitlabflux" = "$PWD/target/debug"
  }
  direct {}
}
TFRC
  export TF_CLI_CONFIG_FILE="$work/cli.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
}
