//! The release configuration is real: it parses, builds the binary cargo builds, and ships
//! the archives, signed checksums and registry manifest the Terraform Registry requires.

use serde_yaml_ng::Value;

fn goreleaser() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.goreleaser.yaml"))
        .expect(".goreleaser.yaml exists");
    serde_yaml_ng::from_str(&text).expect(".goreleaser.yaml is valid YAML")
}

#[test]
fn builds_the_binary_cargo_builds() {
    let config = goreleaser();
    assert_eq!(config["version"], 2);
    let build = &config["builds"][0];
    assert_eq!(build["builder"], "rust");
    let binary = build["binary"].as_str().expect("binary name");
    // The binary cargo builds for the integration tests has the same name.
    let built = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-gitlabflux"));
    assert_eq!(built.file_stem().and_then(|s| s.to_str()), Some(binary));
    let flags: Vec<&str> = build["flags"]
        .as_sequence()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(flags.contains(&"--release") && flags.contains(&"--locked"));
    assert!(flags.contains(&format!("--bin={binary}").as_str()));
    assert!(
        !flags.iter().any(|f| f.contains("test-resources")),
        "test-only resources must never ship"
    );
}

#[test]
fn archives_checksums_and_signature_follow_registry_rules() {
    let config = goreleaser();
    let archive = &config["archives"][0];
    assert_eq!(archive["formats"][0], "zip");
    assert_eq!(
        archive["name_template"],
        "{{ .ProjectName }}_{{ .Version }}_{{ .Os }}_{{ .Arch }}"
    );
    assert_eq!(config["project_name"], "terraform-provider-gitlabflux");
    assert_eq!(
        config["checksum"]["name_template"],
        "{{ .ProjectName }}_{{ .Version }}_SHA256SUMS"
    );
    assert_eq!(config["signs"][0]["artifacts"], "checksum");
    let sign_args: Vec<&str> = config["signs"][0]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(sign_args.contains(&"--detach-sign"));
    let manifest = &config["release"]["extra_files"][0];
    assert_eq!(manifest["glob"], "terraform-registry-manifest.json");
    assert_eq!(
        manifest["name_template"],
        "{{ .ProjectName }}_{{ .Version }}_manifest.json"
    );
}

#[test]
fn registry_manifest_announces_protocol_6() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/terraform-registry-manifest.json"
    ))
    .expect("manifest exists");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest JSON");
    assert_eq!(manifest["version"], 1);
    assert_eq!(
        manifest["metadata"]["protocol_versions"],
        serde_json::json!(["6.0"])
    );
}
