//! `POST /api/graphql`: the subset of GitLab's GraphQL API the provider reads, with GitLab's
//! type and field names (`Types::Clusters::AgentType`, `AgentTokenType`):
//!
//! ```graphql
//! project(fullPath: ID!) { id fullPath name
//!   clusterAgents(first: Int, after: String) {        # ClusterAgentConnection
//!     count pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
//!     nodes { id name createdAt                        # ClusterAgent
//!       tokens(first: Int, after: String) {            # ClusterAgentTokenConnection
//!         count pageInfo { ... }
//!         nodes { id name description status lastUsedAt createdAt } } }   # ClusterAgentToken
//!     edges { cursor node { ... } } } }
//! ```
//!
//! Queries are parsed by a real GraphQL parser (variables, aliases, fragments, `__typename`).
//! As GitLab does: pages hold at most 100 nodes; a project the caller cannot see is `null`,
//! and without the Developer role its agents are an empty connection; an agent's `tokens`
//! are its active ones, most recently used first; ids are global ids
//! (`gid://gitlab/Clusters::Agent/7`); a field the schema lacks fails the whole query with
//! `undefinedField`; a token with `read_api` may query. Mutations are not served.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use graphql_parser::query::{
    Definition, Document, Field, OperationDefinition, Selection, SelectionSet, Value as Gql,
};
use serde_json::{Map, Value, json};

use super::Emu;
use crate::sandbox::gitlab::state::{Agent, AgentToken, Caller, DEVELOPER, Project, World};

/// GitLab's `default_max_page_size`.
const MAX_PAGE: usize = 100;

pub(super) async fn query(State(emu): Emu, headers: HeaderMap, body: String) -> Response {
    let caller = match token(&headers) {
        None => None,
        Some(token) => match emu.read(|w| w.authenticate(&token)) {
            Some(caller) if can_query(&caller) => Some(caller),
            Some(_) => return error_response(StatusCode::FORBIDDEN, "insufficient_scope"),
            None => return error_response(StatusCode::UNAUTHORIZED, "Invalid token"),
        },
    };
    let request: Value = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "Invalid request body"),
    };
    let Some(text) = request["query"].as_str() else {
        return error_response(StatusCode::OK, "No query string was present");
    };
    let variables = request["variables"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let operation = request["operationName"].as_str();
    let answer = emu.read(|w| execute(w, caller.as_ref(), text, &variables, operation));
    match answer {
        Ok(data) => axum::Json(json!({ "data": data })).into_response(),
        Err(errors) => (StatusCode::OK, axum::Json(json!({ "errors": errors }))).into_response(),
    }
}

/// Queries need a token scoped `api` or `read_api`.
fn can_query(caller: &Caller) -> bool {
    caller.scopes.iter().any(|s| s == "api" || s == "read_api")
}

fn token(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("private-token") {
        return Some(token.trim().to_owned());
    }
    let (scheme, token) = header("authorization")?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errors": [{ "message": message }] })),
    )
        .into_response()
}

/// One GraphQL error, as graphql-ruby words it.
fn gql_error(message: String, line: usize, column: usize, extensions: Value) -> Value {
    let mut error =
        json!({ "message": message, "locations": [{ "line": line, "column": column }] });
    if !extensions.is_null() {
        error["extensions"] = extensions;
    }
    error
}

type Errors = Vec<Value>;

struct Run<'w, 'q> {
    world: &'w World,
    caller: Option<&'w Caller>,
    variables: &'q Map<String, Value>,
    fragments: HashMap<&'q str, &'q SelectionSet<'q, &'q str>>,
}

fn execute(
    world: &World,
    caller: Option<&Caller>,
    text: &str,
    variables: &Map<String, Value>,
    operation_name: Option<&str>,
) -> Result<Value, Errors> {
    let document: Document<'_, &str> = graphql_parser::parse_query(text).map_err(|e| {
        vec![json!({ "message": format!("Parse error: {}", e.to_string().trim()) })]
    })?;
    let mut fragments = HashMap::new();
    let mut operations = Vec::new();
    for definition in &document.definitions {
        match definition {
            Definition::Fragment(f) => {
                fragments.insert(f.name, &f.selection_set);
            }
            Definition::Operation(o) => operations.push(o),
        }
    }
    let selection = pick_operation(&operations, operation_name)?;
    let run = Run {
        world,
        caller,
        variables,
        fragments,
    };
    run.select(&Node::Query, selection, "Query")
}

fn pick_operation<'q>(
    operations: &[&'q OperationDefinition<'q, &'q str>],
    name: Option<&str>,
) -> Result<&'q SelectionSet<'q, &'q str>, Errors> {
    let named = |o: &&&OperationDefinition<'q, &'q str>| match (o, name) {
        (_, None) => true,
        (OperationDefinition::Query(q), Some(name)) => q.name == Some(name),
        (OperationDefinition::Mutation(m), Some(name)) => m.name == Some(name),
        (OperationDefinition::Subscription(s), Some(name)) => s.name == Some(name),
        (OperationDefinition::SelectionSet(_), Some(_)) => false,
    };
    let found: Vec<_> = operations.iter().filter(named).collect();
    let message = match (found.as_slice(), name) {
        ([one], _) => match one {
            OperationDefinition::SelectionSet(s) => return Ok(s),
            OperationDefinition::Query(q) => return Ok(&q.selection_set),
            _ => "This sandbox serves queries only".to_string(),
        },
        ([], Some(name)) => format!("No operation named \"{name}\""),
        ([], None) => "No query string was present".to_string(),
        _ => "An operation name is required".to_string(),
    };
    Err(vec![json!({ "message": message })])
}

/// A page of a connection.
struct Page<T> {
    items: Vec<(T, String)>,
    total: usize,
    has_next: bool,
    has_previous: bool,
}

/// What a selection set is evaluated on.
enum Node<'w> {
    Query,
    Project(&'w Project),
    Agents(Page<&'w Agent>),
    AgentEdge(&'w Agent, String),
    Agent(&'w Agent),
    Tokens(Page<&'w AgentToken>),
    TokenEdge(&'w AgentToken, String),
    Token(&'w AgentToken),
    PageInfo {
        has_next: bool,
        has_previous: bool,
        start: Option<String>,
        end: Option<String>,
    },
}

impl Node<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Query => "Query",
            Node::Project(_) => "Project",
            Node::Agents(_) => "ClusterAgentConnection",
            Node::AgentEdge(..) => "ClusterAgentEdge",
            Node::Agent(_) => "ClusterAgent",
            Node::Tokens(_) => "ClusterAgentTokenConnection",
            Node::TokenEdge(..) => "ClusterAgentTokenEdge",
            Node::Token(_) => "ClusterAgentToken",
            Node::PageInfo { .. } => "PageInfo",
        }
    }
}

/// A field's value before its selection set is applied.
enum Resolved<'w> {
    Leaf(Value),
    Object(Node<'w>),
    List(Vec<Node<'w>>),
}

impl<'w, 'q> Run<'w, 'q> {
    fn select(
        &self,
        node: &Node<'w>,
        set: &'q SelectionSet<'q, &'q str>,
        type_name: &str,
    ) -> Result<Value, Errors> {
        let mut out = Map::new();
        self.collect(node, set, type_name, &mut out)?;
        Ok(Value::Object(out))
    }

    fn collect(
        &self,
        node: &Node<'w>,
        set: &'q SelectionSet<'q, &'q str>,
        type_name: &str,
        out: &mut Map<String, Value>,
    ) -> Result<(), Errors> {
        for selection in &set.items {
            match selection {
                Selection::Field(field) => {
                    let key = field.alias.unwrap_or(field.name).to_string();
                    let value = self.field(node, field, type_name)?;
                    out.insert(key, value);
                }
                Selection::FragmentSpread(spread) => {
                    let Some(fragment) = self.fragments.get(spread.fragment_name) else {
                        let p = spread.position;
                        return Err(vec![gql_error(
                            format!(
                                "Fragment {} was used, but not defined",
                                spread.fragment_name
                            ),
                            p.line,
                            p.column,
                            Value::Null,
                        )]);
                    };
                    self.collect(node, fragment, type_name, out)?;
                }
                Selection::InlineFragment(inline) => {
                    self.collect(node, &inline.selection_set, type_name, out)?
                }
            }
        }
        Ok(())
    }

    fn field(
        &self,
        node: &Node<'w>,
        field: &'q Field<'q, &'q str>,
        type_name: &str,
    ) -> Result<Value, Errors> {
        if field.name == "__typename" {
            return Ok(Value::from(type_name));
        }
        let undefined = || {
            vec![gql_error(
                format!("Field '{}' doesn't exist on type '{type_name}'", field.name),
                field.position.line,
                field.position.column,
                json!({ "code": "undefinedField", "typeName": type_name, "fieldName": field.name }),
            )]
        };
        let resolved = self.resolve(node, field).ok_or_else(undefined)?;
        match resolved {
            Resolved::Leaf(value) => Ok(value),
            Resolved::Object(child) => {
                let name = child.type_name();
                self.select(&child, &field.selection_set, name)
            }
            Resolved::List(children) => children
                .iter()
                .map(|child| self.select(child, &field.selection_set, child.type_name()))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }

    /// The field on `node`; `None` when the type has no such field.
    fn resolve(&self, node: &Node<'w>, field: &Field<'q, &'q str>) -> Option<Resolved<'w>> {
        let leaf = |v: Value| Some(Resolved::Leaf(v));
        match (node, field.name) {
            (Node::Query, "project") => {
                let path = self.argument(field, "fullPath");
                let project = path.as_str().and_then(|p| self.visible_project(p));
                match project {
                    Some(p) => Some(Resolved::Object(Node::Project(p))),
                    None => leaf(Value::Null),
                }
            }
            (Node::Project(p), "id") => leaf(json!(format!("gid://gitlab/Project/{}", p.id))),
            (Node::Project(p), "fullPath") => leaf(json!(self.world.full_path(p))),
            (Node::Project(p), "name") => leaf(json!(p.name)),
            (Node::Project(p), "clusterAgents") => {
                let mut agents: Vec<&Agent> = match self.caller_level(p) {
                    Some(level) if level >= DEVELOPER => self
                        .world
                        .agents
                        .iter()
                        .filter(|a| a.project_id == p.id)
                        .collect(),
                    _ => Vec::new(),
                };
                agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                Some(Resolved::Object(Node::Agents(self.page(
                    agents,
                    field,
                    |a| a.id,
                ))))
            }
            (Node::Agents(page), _) => self.connection(page, field, Node::AgentEdge, Node::Agent),
            (Node::Tokens(page), _) => self.connection(page, field, Node::TokenEdge, Node::Token),
            (Node::AgentEdge(a, cursor), name) => edge(name, cursor, || Node::Agent(a)),
            (Node::TokenEdge(t, cursor), name) => edge(name, cursor, || Node::Token(t)),
            (Node::Agent(a), "id") => leaf(json!(format!("gid://gitlab/Clusters::Agent/{}", a.id))),
            (Node::Agent(a), "name") => leaf(json!(a.name)),
            (Node::Agent(a), "createdAt") => leaf(json!(a.created_at)),
            (Node::Agent(a), "tokens") => {
                let mut tokens: Vec<&AgentToken> = self
                    .world
                    .agent_tokens
                    .iter()
                    .filter(|t| t.agent_id == a.id && !t.revoked)
                    .collect();
                // Most recently used first, never used last (`order_last_used_at_desc`).
                tokens.sort_by(|x, y| {
                    (y.last_used_at.is_some(), &y.last_used_at, y.id).cmp(&(
                        x.last_used_at.is_some(),
                        &x.last_used_at,
                        x.id,
                    ))
                });
                Some(Resolved::Object(Node::Tokens(self.page(
                    tokens,
                    field,
                    |t| t.id,
                ))))
            }
            (Node::Token(t), "id") => {
                leaf(json!(format!("gid://gitlab/Clusters::AgentToken/{}", t.id)))
            }
            (Node::Token(t), "name") => leaf(json!(t.name)),
            (Node::Token(t), "description") => leaf(json!(t.description)),
            (Node::Token(t), "status") => leaf(json!(if t.revoked { "REVOKED" } else { "ACTIVE" })),
            (Node::Token(t), "lastUsedAt") => leaf(json!(t.last_used_at)),
            (Node::Token(t), "createdAt") => leaf(json!(t.created_at)),
            (
                Node::PageInfo {
                    has_next,
                    has_previous,
                    start,
                    end,
                },
                name,
            ) => match name {
                "hasNextPage" => leaf(json!(has_next)),
                "hasPreviousPage" => leaf(json!(has_previous)),
                "startCursor" => leaf(json!(start)),
                "endCursor" => leaf(json!(end)),
                _ => None,
            },
            _ => None,
        }
    }

    fn connection<T: Copy>(
        &self,
        page: &Page<T>,
        field: &Field<'q, &'q str>,
        edge: impl Fn(T, String) -> Node<'w>,
        node: impl Fn(T) -> Node<'w>,
    ) -> Option<Resolved<'w>> {
        match field.name {
            "count" => Some(Resolved::Leaf(json!(page.total))),
            "nodes" => Some(Resolved::List(
                page.items.iter().map(|(item, _)| node(*item)).collect(),
            )),
            "edges" => Some(Resolved::List(
                page.items
                    .iter()
                    .map(|(item, cursor)| edge(*item, cursor.clone()))
                    .collect(),
            )),
            "pageInfo" => Some(Resolved::Object(Node::PageInfo {
                has_next: page.has_next,
                has_previous: page.has_previous,
                start: page.items.first().map(|(_, c)| c.clone()),
                end: page.items.last().map(|(_, c)| c.clone()),
            })),
            _ => None,
        }
    }

    /// The page `first`/`after` ask for (forward pagination, as GitLab's keyset cursors).
    fn page<T: Copy>(
        &self,
        all: Vec<T>,
        field: &Field<'q, &'q str>,
        id: impl Fn(T) -> u64,
    ) -> Page<T> {
        let first = self
            .argument(field, "first")
            .as_u64()
            .map_or(MAX_PAGE, |n| (n as usize).min(MAX_PAGE));
        let after = self.argument(field, "after");
        let start = after
            .as_str()
            .and_then(decode_cursor)
            .and_then(|after| all.iter().position(|t| id(*t) == after))
            .map_or(0, |i| i + 1);
        let total = all.len();
        let items: Vec<(T, String)> = all
            .into_iter()
            .skip(start)
            .take(first)
            .map(|t| (t, encode_cursor(id(t))))
            .collect();
        Page {
            has_next: start + items.len() < total,
            has_previous: start > 0,
            items,
            total,
        }
    }

    /// An argument's value as JSON, variables substituted; `Null` when absent.
    fn argument(&self, field: &Field<'q, &'q str>, name: &str) -> Value {
        field
            .arguments
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Value::Null, |(_, v)| self.json(v))
    }

    fn json(&self, value: &Gql<'q, &'q str>) -> Value {
        match value {
            Gql::Variable(name) => self.variables.get(*name).cloned().unwrap_or(Value::Null),
            Gql::Int(n) => n.as_i64().map_or(Value::Null, Value::from),
            Gql::Float(f) => json!(f),
            Gql::String(s) => json!(s),
            Gql::Boolean(b) => json!(b),
            Gql::Null => Value::Null,
            Gql::Enum(e) => json!(e),
            Gql::List(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Gql::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), self.json(v)))
                    .collect(),
            ),
        }
    }

    fn visible_project(&self, full_path: &str) -> Option<&'w Project> {
        let index = self.world.find_project_index(full_path)?;
        let project = &self.world.projects[index];
        // `fullPath` is a path; a numeric id names nothing.
        let by_path = self
            .world
            .full_path(project)
            .eq_ignore_ascii_case(full_path);
        (by_path && self.caller_level(project).is_some()).then_some(project)
    }

    fn caller_level(&self, project: &Project) -> Option<u32> {
        self.world.access_level(self.caller?, project)
    }
}

fn edge<'w>(name: &str, cursor: &str, node: impl Fn() -> Node<'w>) -> Option<Resolved<'w>> {
    match name {
        "cursor" => Some(Resolved::Leaf(json!(cursor))),
        "node" => Some(Resolved::Object(node())),
        _ => None,
    }
}

/// GitLab's keyset cursors: base64 of a small JSON object naming the last row's id.
fn encode_cursor(id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({ "id": id.to_string() }).to_string())
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value["id"].as_str()?.parse().ok()
}
