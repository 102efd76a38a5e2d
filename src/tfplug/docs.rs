//! Renders Terraform Registry documentation pages (`docs/`) from schemas, so descriptions are
//! written once, in the schema, and the pages cannot drift from what the provider serves.

use std::fmt::Write as _;

use super::resource::FunctionSignature;
use super::schema::{AttrType, Attribute, Block, Nesting, Schema};
use super::value::Type;

/// What kind of page: decides the heading and front matter.
#[derive(Clone, Copy)]
pub enum PageKind {
    Provider,
    Resource,
    DataSource,
    ListResource,
    Action,
}

/// The hand-written parts of a page, each placed where the registry layout expects it.
#[derive(Clone, Copy, Default)]
pub struct PageExamples<'a> {
    /// Terraform configuration under "Example Usage".
    pub usage: Option<&'a str>,
    /// Markdown after the usage example: what a configuration alone cannot show.
    pub notes: Option<&'a str>,
    /// A shell session under "Import".
    pub import: Option<&'a str>,
    /// An `import {}` block by identity (Terraform 1.12+), after the shell session.
    pub import_by_identity: Option<&'a str>,
}

/// A page for the provider, a resource or a data source.
pub fn schema_page(kind: PageKind, name: &str, schema: &Schema, examples: PageExamples) -> String {
    let (title, heading) = match kind {
        PageKind::Provider => (format!("{name} Provider"), format!("{name} Provider")),
        PageKind::Resource => (format!("{name} Resource"), format!("{name} (Resource)")),
        PageKind::DataSource => (
            format!("{name} Data Source"),
            format!("{name} (Data Source)"),
        ),
        PageKind::ListResource => (
            format!("{name} List Resource"),
            format!("{name} (List Resource)"),
        ),
        PageKind::Action => (format!("{name} Action"), format!("{name} (Action)")),
    };
    let mut out = front_matter(&title, &schema.block.description);
    let _ = write!(out, "# {heading}\n\n{}\n\n", schema.block.description);
    if let Some(example) = examples.usage {
        let _ = write!(
            out,
            "## Example Usage\n\n```terraform\n{}\n```\n\n",
            example.trim_end()
        );
    }
    if let Some(notes) = examples.notes {
        let _ = write!(out, "{}\n\n", notes.trim());
    }
    out.push_str("## Schema\n\n");
    let mut nested = Vec::new();
    write_block(&mut out, &schema.block, "", &mut nested);
    while !nested.is_empty() {
        for (anchor, attrs) in std::mem::take(&mut nested) {
            let _ = write!(
                out,
                "<a id=\"{anchor}\"></a>\n### Nested Schema for `{}`\n\n",
                anchor.trim_start_matches("nestedatt--").replace("--", ".")
            );
            write_attributes(&mut out, &attrs, &anchor, &mut nested);
        }
    }
    if let Some(import) = examples.import {
        let _ = write!(
            out,
            "## Import\n\nImport is supported using the following syntax:\n\n```shell\n{}\n```\n",
            import.trim_end()
        );
    }
    if let Some(block) = examples.import_by_identity {
        let _ = write!(
            out,
            "\nWith Terraform 1.12 or later, an `import` block can name the resource by its \
             identity instead:\n\n```terraform\n{}\n```\n",
            block.trim_end()
        );
    }
    out
}

/// A page for a provider function.
pub fn function_page(name: &str, sig: &FunctionSignature, example: Option<&str>) -> String {
    let mut out = front_matter(&format!("{name} function"), sig.summary);
    let _ = write!(out, "# function: {name}\n\n{}\n\n", sig.description);
    if let Some(example) = example {
        let _ = write!(
            out,
            "## Example Usage\n\n```terraform\n{}\n```\n\n",
            example.trim_end()
        );
    }
    let params: Vec<&str> = sig.parameters.iter().map(|p| p.name).collect();
    let _ = write!(
        out,
        "## Signature\n\n```text\n{name}({}) {}\n```\n\n## Arguments\n\n",
        params
            .iter()
            .zip(&sig.parameters)
            .map(|(n, p)| format!("{n} {}", type_name(&p.ty)))
            .collect::<Vec<_>>()
            .join(", "),
        type_name(&sig.return_type)
    );
    for (i, p) in sig.parameters.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. `{}` ({}) {}",
            i + 1,
            p.name,
            type_name(&p.ty),
            p.description
        );
    }
    out
}

fn front_matter(title: &str, description: &str) -> String {
    let first_line = description.lines().next().unwrap_or_default();
    format!("---\npage_title: \"{title}\"\ndescription: |-\n  {first_line}\n---\n\n")
}

fn write_block(
    out: &mut String,
    block: &Block,
    anchor: &str,
    nested: &mut Vec<(String, Vec<Attribute>)>,
) {
    write_attributes(out, &block.attributes, anchor, nested);
}

fn write_attributes(
    out: &mut String,
    attrs: &[Attribute],
    anchor: &str,
    nested: &mut Vec<(String, Vec<Attribute>)>,
) {
    type Picker = fn(&Attribute) -> bool;
    let groups: [(&str, Picker); 3] = [
        ("Required", |a| a.required),
        ("Optional", |a| a.optional),
        ("Read-Only", |a| a.computed && !a.optional && !a.required),
    ];
    for (title, pick) in groups {
        let picked: Vec<&Attribute> = attrs.iter().filter(|a| pick(a)).collect();
        if picked.is_empty() {
            continue;
        }
        let _ = write!(out, "### {title}\n\n");
        for a in picked {
            let mut flags = vec![attribute_type(a)];
            if a.sensitive {
                flags.push("Sensitive".into());
            }
            if a.write_only {
                flags.push("Write-only".into());
            }
            if a.deprecated {
                flags.push("Deprecated".into());
            }
            // One space between the parts a line has: no stray space for a part left out.
            let mut parts = vec![format!("- `{}` ({})", a.name, flags.join(", "))];
            let description = a.description.trim();
            if !description.is_empty() {
                parts.push(description.to_string());
            }
            if let Some(default) = &a.default
                && let Some(json) = default.to_plain_json()
            {
                parts.push(format!("Defaults to `{json}`."));
            }
            if let AttrType::Nested(n) = &a.ty {
                let child = if anchor.is_empty() {
                    format!("nestedatt--{}", a.name)
                } else {
                    format!("{anchor}--{}", a.name)
                };
                parts.push(format!("(see [below for nested schema](#{child}))"));
                nested.push((child, n.attributes.clone()));
            }
            out.push_str(&parts.join(" "));
            out.push('\n');
        }
        out.push('\n');
    }
}

fn attribute_type(a: &Attribute) -> String {
    match &a.ty {
        AttrType::Plain(t) => type_name(t),
        AttrType::Nested(n) => match n.nesting {
            Nesting::Single | Nesting::Group => "Attributes".into(),
            Nesting::List => "Attributes List".into(),
            Nesting::Set => "Attributes Set".into(),
            Nesting::Map => "Attributes Map".into(),
        },
    }
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_group_attributes_and_link_nested_schemas() {
        let schema = Schema::new(
            0,
            Block::new(vec![
                Attribute::string("name")
                    .required()
                    .description("The name."),
                Attribute::string("token")
                    .optional()
                    .sensitive()
                    .description("A token."),
                Attribute::string("id").computed().description("The ID."),
                Attribute::object("cfg", vec![Attribute::number("n").default(1_i64)])
                    .optional()
                    .description("Settings."),
            ])
            .description("Manages a thing."),
        );
        let page = schema_page(
            PageKind::Resource,
            "x_thing",
            &schema,
            PageExamples {
                usage: Some("resource \"x_thing\" \"a\" {}"),
                notes: Some("## Notes\n\nWhat a configuration cannot show."),
                import: None,
                import_by_identity: None,
            },
        );
        assert!(page.contains("```\n\n## Notes\n\nWhat a configuration cannot show.\n\n## Schema"));
        assert!(page.starts_with("---\npage_title: \"x_thing Resource\""));
        assert!(page.contains("### Required\n\n- `name` (String) The name."));
        assert!(page.contains("- `token` (String, Sensitive) A token."));
        assert!(page.contains("### Read-Only\n\n- `id` (String) The ID."));
        assert!(page.contains("(see [below for nested schema](#nestedatt--cfg))"));
        assert!(page.contains("### Nested Schema for `cfg`"));
        assert!(page.contains("- `n` (Number) Defaults to `1`.\n"));
    }
}
