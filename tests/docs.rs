//! `docs/` is generated from the schemas and examples; this test keeps them in sync, and
//! proves every example is valid Terraform. Regenerate with:
//!
//!     UPDATE_DOCS=1 cargo test --test docs

mod common;

use std::path::{Path, PathBuf};

use terraform_provider_gitlabflux::provider::GitlabFluxProvider;
use terraform_provider_gitlabflux::resources::TEST_ONLY_PREFIX;
use terraform_provider_gitlabflux::tfplug::Provider;
use terraform_provider_gitlabflux::tfplug::docs::{PageKind, function_page, schema_page};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Every page the provider's schemas produce, as (path under the repository, content).
fn expected_pages() -> Vec<(PathBuf, String)> {
    let p = GitlabFluxProvider;
    let examples = root().join("examples");
    let mut pages = vec![(
        PathBuf::from("docs/index.md"),
        schema_page(
            PageKind::Provider,
            p.type_name(),
            &p.schema(),
            read_optional(&examples.join("provider/provider.tf")).as_deref(),
            None,
        ),
    )];
    for r in p
        .resources()
        .iter()
        .filter(|r| !r.type_name().starts_with(TEST_ONLY_PREFIX))
    {
        let dir = examples.join("resources").join(r.type_name());
        let short = r.type_name().trim_start_matches("gitlabflux_");
        pages.push((
            PathBuf::from(format!("docs/resources/{short}.md")),
            schema_page(
                PageKind::Resource,
                r.type_name(),
                &r.schema(),
                read_optional(&dir.join("resource.tf")).as_deref(),
                read_optional(&dir.join("import.sh")).as_deref(),
            ),
        ));
    }
    for d in p.data_sources() {
        let dir = examples.join("data-sources").join(d.type_name());
        let short = d.type_name().trim_start_matches("gitlabflux_");
        pages.push((
            PathBuf::from(format!("docs/data-sources/{short}.md")),
            schema_page(
                PageKind::DataSource,
                d.type_name(),
                &d.schema(),
                read_optional(&dir.join("data-source.tf")).as_deref(),
                None,
            ),
        ));
    }
    for f in p.functions() {
        let example = read_optional(
            &examples
                .join("functions")
                .join(f.name())
                .join("function.tf"),
        );
        pages.push((
            PathBuf::from(format!("docs/functions/{}.md", f.name())),
            function_page(f.name(), &f.signature(), example.as_deref()),
        ));
    }
    pages
}

#[test]
fn docs_match_the_schemas() {
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (path, content) in expected_pages() {
        let full = root().join(&path);
        if read_optional(&full).as_deref() == Some(content.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write page");
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "docs out of date: {stale:?}. Run `UPDATE_DOCS=1 cargo test --test docs` and commit."
    );
}

#[test]
fn every_example_is_valid_terraform() {
    let mut files = Vec::new();
    collect_tf(&root().join("examples"), &mut files);
    assert!(files.len() >= 4, "examples found: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read example");
        let ws = common::Workspace::new();
        if text.contains("required_providers") {
            ws.write_raw(&text);
        } else {
            ws.write(&text);
        }
        let out = ws.run(&["validate", "-no-color"]);
        assert!(
            out.success(),
            "{} is not valid:\n{}",
            file.display(),
            out.text()
        );
    }
}

fn collect_tf(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_tf(&path, out);
        } else if path.extension().is_some_and(|e| e == "tf") {
            out.push(path);
        }
    }
}
