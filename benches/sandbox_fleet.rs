//! Sandbox fleet benchmark: time from process start to the ready line, and resident memory
//! once idle, for one cluster and fleets of 10, 100 and 1,000 (with simulated controllers, as
//! the tests run it), and a restart of the largest fleet from its state directory. Shapes run
//! alternately so a noisy machine affects them alike; prints medians.
//!
//!     cargo bench --bench sandbox_fleet [-- RUNS]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEETS: [usize; 4] = [1, 10, 100, 1000];
/// How long a started sandbox idles before its memory is read.
const SETTLE: Duration = Duration::from_millis(1500);

struct Run {
    start: Duration,
    rss_kib: u64,
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let binary = Path::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"));
    let state = tempfile::tempdir().expect("state dir");
    let largest = FLEETS[FLEETS.len() - 1];
    // A saved fleet to restart from, written once.
    let _saved = measure(binary, largest, Some(state.path()));

    let mut rows: Vec<(String, Vec<Run>)> = FLEETS
        .iter()
        .map(|n| (shape(*n), Vec::new()))
        .chain([(format!("{largest} clusters, from --state-dir"), Vec::new())])
        .collect();
    for _ in 0..runs {
        for (i, n) in FLEETS.iter().enumerate() {
            rows[i].1.push(measure(binary, *n, None));
        }
        rows[FLEETS.len()]
            .1
            .push(measure(binary, largest, Some(state.path())));
    }

    println!("binary: {}", binary.display());
    println!(
        "{:<36} {:>4} {:>16} {:>14} {:>20}",
        "sandbox", "n", "start median ms", "RSS median MiB", "per cluster KiB"
    );
    let baseline = median(rows[0].1.iter().map(|r| r.rss_kib).collect());
    for (i, (name, samples)) in rows.iter().enumerate() {
        let start = median(samples.iter().map(|r| r.start.as_micros() as u64).collect());
        let rss = median(samples.iter().map(|r| r.rss_kib).collect());
        let clusters = FLEETS.get(i).copied().unwrap_or(largest) as u64;
        let per_cluster = match clusters {
            1 => "-".to_string(),
            n => format!("{}", rss.saturating_sub(baseline) / (n - 1)),
        };
        println!(
            "{name:<36} {:>4} {:>16.1} {:>14.1} {:>20}",
            samples.len(),
            start as f64 / 1e3,
            rss as f64 / 1024.0,
            per_cluster,
        );
    }
}

fn shape(clusters: usize) -> String {
    match clusters {
        1 => "1 cluster (no --clusters)".to_string(),
        n => format!("{n} clusters"),
    }
}

/// Starts a sandbox, waits for its ready line, lets it idle, reads its memory, stops it.
fn measure(binary: &Path, clusters: usize, state_dir: Option<&Path>) -> Run {
    let mut cmd = Command::new(binary);
    cmd.args(["serve", "--simulate-controllers"]);
    if clusters > 1 {
        cmd.args(["--clusters", &clusters.to_string()]);
    }
    if let Some(dir) = state_dir {
        cmd.arg("--state-dir").arg(dir);
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let start = started.elapsed();
    assert!(line.contains("gitlab_url"), "not a ready line: {line}");
    std::thread::sleep(SETTLE);
    let rss_kib = rss_kib(&child);
    stop(child);
    Run { start, rss_kib }
}

fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .expect("the sandbox's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Closing standard input stops the sandbox after its final save.
fn stop(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
