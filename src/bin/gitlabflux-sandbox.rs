//! `gitlabflux-sandbox serve`: local GitLab, Kubernetes API and OCI registry emulators for
//! trying the provider, its tests and benchmarks. Prints one JSON line with the URLs and credentials once
//! ready, and serves until SIGTERM/SIGINT or until its standard input closes (so a parent
//! that dies takes the sandbox with it).

use std::path::PathBuf;
use std::process::ExitCode;

use terraform_provider_gitlabflux::sandbox::faults::FaultSpec;
use terraform_provider_gitlabflux::sandbox::fleet;
use terraform_provider_gitlabflux::sandbox::{Sandbox, SandboxOptions};
use tokio::io::AsyncReadExt as _;

const USAGE: &str = "usage: gitlabflux-sandbox serve [--listen 127.0.0.1:0] [--state-dir DIR] \
[--simulate-controllers] [--rollout-delay DURATION] [--faults JSON|@FILE] [--clusters N|a,b,c]

Prints one JSON line {gitlab_url, gitlab_token, kube_url, kubeconfig, admin_url, registry_url}
once ready, then serves until SIGTERM, SIGINT or end of standard input.

--clusters serves a fleet of independent Kubernetes APIs beside the one GitLab: N clusters
named cluster-1 .. cluster-N, or the names given. The JSON line gains
clusters: {name: {kube_url, context}}, and the kubeconfig one context per cluster.";

fn parse(args: &[String]) -> Result<SandboxOptions, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help") | None => return Err(USAGE.to_string()),
        Some(other) => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
    let mut options = SandboxOptions::default();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                options.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: {v:?} is not an address like 127.0.0.1:0"))?;
            }
            "--state-dir" => options.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--simulate-controllers" => options.simulate_controllers = true,
            "--rollout-delay" => {
                let v = value("--rollout-delay")?;
                options.rollout_delay = humantime::parse_duration(&v).map_err(|e| {
                    format!("--rollout-delay: {v:?} is not a duration like 2s: {e}")
                })?;
            }
            "--faults" => {
                options.faults =
                    FaultSpec::parse(&value("--faults")?).map_err(|e| format!("--faults: {e}"))?
            }
            "--clusters" => {
                options.clusters = fleet::parse_names(&value("--clusters")?)?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    if !options.listen.ip().is_loopback() {
        eprintln!("warning: the sandbox has no real security; it is meant for loopback only");
    }
    Ok(options)
}

/// The signals that stop the sandbox, registered before the ready line is printed so a
/// SIGTERM right after it is handled rather than killing the process mid-save.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

async fn wait_for_stop(signals: StopSignals) {
    let StopSignals { mut term, mut int } = signals;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = stdin_closed => {}
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        let signals = match StopSignals::register() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot handle stop signals: {e}");
                return ExitCode::from(1);
            }
        };
        let sandbox = match Sandbox::start(options).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sandbox failed to start: {e}");
                return ExitCode::from(1);
            }
        };
        match serde_json::to_string(&sandbox.info) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("cannot print the sandbox info: {e}");
                return ExitCode::from(1);
            }
        }
        wait_for_stop(signals).await;
        sandbox.stop().await;
        ExitCode::SUCCESS
    });
    // The stdin reader sits in a blocking thread that may never return; do not wait for it.
    runtime.shutdown_background();
    code
}
