# Sourced by the scripts that drive the sandbox: a scratch directory ($work) removed on exit,
# and `start_sandbox ARGS...`, which starts `gitlabflux-sandbox serve ARGS...` with its
# standard input held open (closing it on exit stops the sandbox) and sets $info to the JSON
# line it prints once ready. Needs the debug build of the sandbox.

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
