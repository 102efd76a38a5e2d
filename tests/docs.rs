//! `docs/` is generated from the schemas and examples; this test keeps them in sync, and
//! proves every example is valid Terraform. Regenerate with:
//!
//!     UPDATE_DOCS=1 cargo test --test docs

mod common;

use std::path::{Path, PathBuf};

use terraform_provider_gitlabflux::provider::GitlabFluxProvider;
use terraform_provider_gitlabflux::resources::TEST_ONLY_PREFIX;
use terraform_provider_gitlabflux::tfplug::Provider;
use terraform_provider_gitlabflux::tfplug::docs::{
    PageExamples, PageKind, function_page, schema_page,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// An example every page must have (the registry layout requires it).
fn example(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("missing example {}: {e}", path.display()));
    Some(text)
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
            PageExamples {
                usage: example(&examples.join("provider/provider.tf")).as_deref(),
                ..PageExamples::default()
            },
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
                PageExamples {
                    usage: example(&dir.join("resource.tf")).as_deref(),
                    notes: read_optional(&dir.join("notes.md")).as_deref(),
                    import: example(&dir.join("import.sh")).as_deref(),
                    import_by_identity: example(&dir.join("import-by-identity.tf")).as_deref(),
                },
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
                PageExamples {
                    usage: example(&dir.join("data-source.tf")).as_deref(),
                    ..PageExamples::default()
                },
            ),
        ));
    }
    for l in p.list_resources() {
        let dir = examples.join("list-resources").join(l.type_name());
        let short = l.type_name().trim_start_matches("gitlabflux_");
        pages.push((
            PathBuf::from(format!("docs/list-resources/{short}.md")),
            schema_page(
                PageKind::ListResource,
                l.type_name(),
                &l.schema(),
                PageExamples {
                    usage: example(&dir.join(QUERY_EXAMPLE)).as_deref(),
                    ..PageExamples::default()
                },
            ),
        ));
    }
    for a in p.actions() {
        let dir = examples.join("actions").join(a.type_name());
        let short = a.type_name().trim_start_matches("gitlabflux_");
        pages.push((
            PathBuf::from(format!("docs/actions/{short}.md")),
            schema_page(
                PageKind::Action,
                a.type_name(),
                &a.schema(),
                PageExamples {
                    usage: example(&dir.join("action.tf")).as_deref(),
                    ..PageExamples::default()
                },
            ),
        ));
    }
    for f in p.functions() {
        let example = example(
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

/// Descriptions written as multi-line strings once carried their source indentation into
/// the docs (and into what editors show on hover); a missing part must not leave its space.
#[test]
fn no_page_carries_stray_whitespace() {
    let mut stray = Vec::new();
    for (path, page) in expected_pages() {
        let mut in_code = false;
        for (number, line) in page.lines().enumerate() {
            if line.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let text = line.trim_start();
            if !in_code && (text.contains("  ") || text != text.trim_end()) {
                stray.push(format!("{}:{}: {line:?}", path.display(), number + 1));
            }
        }
    }
    assert!(stray.is_empty(), "stray whitespace:\n{}", stray.join("\n"));
}

#[test]
fn no_page_outlives_its_schema() {
    let expected: std::collections::BTreeSet<PathBuf> =
        expected_pages().into_iter().map(|(path, _)| path).collect();
    let mut pages = Vec::new();
    collect_md(&root().join("docs"), &mut pages);
    // Guides are written by hand; every other page comes from a schema.
    let orphans: Vec<_> = pages
        .iter()
        .filter_map(|p| p.strip_prefix(root()).ok())
        .filter(|p| !p.starts_with("docs/guides") && !expected.contains(*p))
        .collect();
    assert!(!pages.is_empty(), "docs found");
    assert!(orphans.is_empty(), "pages without a schema: {orphans:?}");
}

fn collect_md(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("docs dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_md(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

fn every_example_is_valid_terraform() {
    let mut files = Vec::new();
    collect_tf(&root().join("examples"), &mut files);
    assert!(files.len() >= 4, "examples found: {files:?}");
    // Examples with modules are whole directories, checked by `every_example_directory_...`.
    let in_module_example = |f: &Path| {
        MODULE_EXAMPLES
            .iter()
            .any(|d| f.starts_with(root().join(d)))
    };
    for file in files.into_iter().filter(|f| !in_module_example(f)) {
        let Some(text) = example_text(&file) else {
            continue;
        };
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

/// An example as it is validated: an import by identity beside the resource it imports;
/// `None` on a Terraform older than what the example uses (identity 1.12, actions 1.14).
fn example_text(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).expect("read example");
    let identity = file.file_name().is_some_and(|n| n == IDENTITY_EXAMPLE);
    // Actions came with Terraform 1.14, identity with 1.12.
    let newer = identity || file.starts_with(root().join("examples/actions"));
    if newer && common::terraform::under_test() == common::terraform::Terraform::Machine {
        return None;
    }
    if !identity {
        return Some(text);
    }
    let resource = file.with_file_name("resource.tf");
    let resource = std::fs::read_to_string(&resource).expect("the resource example beside it");
    Some(format!("{resource}\n{text}"))
}

const IDENTITY_EXAMPLE: &str = "import-by-identity.tf";
const QUERY_EXAMPLE: &str = "list-resource.tfquery.hcl";

/// Every list resource's query example is a valid query (Terraform 1.14+ reads
/// `.tfquery.hcl` files; `validate -query` checks them).
fn every_query_example_is_valid() {
    let dir = root().join("examples/list-resources");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir)
        .expect("list-resources examples")
        .flatten()
    {
        let query = entry.path().join(QUERY_EXAMPLE);
        let text = std::fs::read_to_string(&query).expect("query example");
        let ws = common::Workspace::new();
        ws.write("provider \"gitlabflux\" {}\n");
        std::fs::write(ws.path().join(QUERY_EXAMPLE), text).expect("write query");
        let out = ws.run(&["validate", "-query", "-no-color"]);
        assert!(
            out.success(),
            "{} is not valid:\n{}",
            query.display(),
            out.text()
        );
        checked += 1;
    }
    assert_eq!(checked, GitlabFluxProvider.list_resources().len());
}

/// Examples made of a root and local modules, validated as directories.
const MODULE_EXAMPLES: [&str; 1] = ["examples/fleet"];

fn every_example_directory_with_modules_initialises_and_is_valid() {
    for example in MODULE_EXAMPLES {
        let ws = common::Workspace::with_provider_mirror();
        common::copy_dir(&root().join(example), &ws.path().join("example"));
        let dir = ws.path().join("example");
        let run = |args: &[&str]| {
            let mut cmd = common::terraform::command();
            cmd.args(args).current_dir(&dir);
            for (k, v) in ws.env() {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("run terraform");
            assert!(
                out.status.success(),
                "{example}: terraform {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["init", "-backend=false", "-input=false", "-no-color"]);
        run(&["validate", "-no-color"]);
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

on_both_terraforms!(
    every_example_is_valid_terraform,
    every_example_directory_with_modules_initialises_and_is_valid,
);
on_terraform!(on_terraform_1_15_only, V1_15, every_query_example_is_valid);
