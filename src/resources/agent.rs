//! `gitlabflux_agent`: a GitLab agent for Kubernetes registered in a project, with its
//! `.gitlab/agents/<name>/config.yaml` committed atomically (no commit when unchanged).
//! Import ID: `<project path>:<agent name>`.

use async_trait::async_trait;

use super::support::{self, boolean, gitlab_error, gitlab_error_at, obj, object, opt, required_string, set, split_import_id, string, string_list_or_null, strings};
use crate::gitlab::agent_config::{
    AccessAs, AgentConfig, CiAccess, CiAccessEntry, Empty, Flux, IdEntry, Impersonate,
    ImpersonateExtra, Logging, MAX_ENTRIES, Observability, UserAccess, UserAccessAs,
    config_file_path,
};
use crate::gitlab::files::{CommitMeta, WantedFile, read_text, sync_files};
use crate::gitlab::names::validate_agent_name;
use super::context::{ProviderData, gitlab};
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, Nesting,
    NewState, PlanContext, Resource, Schema, Type, Value,
};

pub struct Agent;

/// Private state of an imported agent: read reconstructs `config` from the file once.
const IMPORTED: &[u8] = b"imported";

fn agent_name_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    if let Some(name) = v.as_str()
        && let Err(e) = validate_agent_name(name)
    {
        diags.error_at(path.clone(), "Invalid agent name", format!("{path} {e}."));
    }
}

fn access_entry_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("id")
            .required()
            .description("Project or group full path."),
        Attribute::string("default_namespace")
            .optional()
            .description("Namespace CI jobs use when they do not set one."),
        Attribute::string("access_as")
            .optional()
            .validator(validators::one_of(&[
                "agent",
                "impersonate",
                "ci_job",
                "ci_user",
            ]))
            .description(
                "`agent`, `impersonate`, `ci_job` or `ci_user`. Default: GitLab's (`agent`).",
            ),
        Attribute::object(
            "impersonate",
            vec![
                Attribute::string("username").required(),
                Attribute::string("uid").optional(),
                Attribute::string_list("groups").optional(),
                Attribute::new("extra", Type::map(Type::list(Type::String))).optional(),
            ],
        )
        .optional()
        .description(
            "Identity to impersonate; required exactly when `access_as = \"impersonate\"`.",
        ),
        Attribute::string_list("environments")
            .optional()
            .description("Only jobs of these environments get access."),
        Attribute::bool("protected_branches_only")
            .optional()
            .description("Only jobs on protected branches get access."),
    ]
}

fn config_attribute() -> Attribute {
    let id_list = |name: &str| {
        Attribute::nested(
            name,
            Nesting::List,
            vec![Attribute::string("id").required()],
        )
        .optional()
        .validator(validators::max_items(MAX_ENTRIES))
    };
    Attribute::object(
        "config",
        vec![
            Attribute::object(
                "ci_access",
                vec![
                    Attribute::nested("projects", Nesting::List, access_entry_attributes())
                        .optional()
                        .validator(validators::max_items(MAX_ENTRIES)),
                    Attribute::nested("groups", Nesting::List, access_entry_attributes())
                        .optional()
                        .validator(validators::max_items(MAX_ENTRIES)),
                ],
            )
            .optional()
            .description("CI/CD jobs of these projects and groups may use the agent."),
            Attribute::object(
                "user_access",
                vec![
                    Attribute::string("access_as")
                        .optional()
                        .validator(validators::one_of(&["agent", "user"])),
                    id_list("projects"),
                    id_list("groups"),
                ],
            )
            .optional()
            .description("Members of these projects and groups may use the agent."),
            Attribute::object(
                "observability",
                vec![Attribute::object(
                    "logging",
                    vec![
                        Attribute::string("level").optional().validator(validators::one_of(&[
                            "debug", "info", "warn", "error",
                        ])),
                        Attribute::string("grpc_level").optional().validator(
                            validators::one_of(&["debug", "info", "warn", "error"]),
                        ),
                    ],
                )
                .optional()],
            )
            .optional(),
            Attribute::object("flux", vec![Attribute::string("webhook_receiver_url").optional()])
                .optional()
                .description("Receiver the agent notifies on push, for immediate Flux reconciliation."),
        ],
    )
    .optional()
    .description("Agent configuration, rendered to `.gitlab/agents/<name>/config.yaml`. Null: the file is not managed.")
}

/// Maps the `config` attribute to the typed configuration, checking cross-field rules.
fn config_from_value(v: &Value, diags: &mut Diagnostics) -> AgentConfig {
    let base = AttrPath::root().attr("config");
    let ci_access = object(v, "ci_access").map(|ci| CiAccess {
        projects: entries(ci, "projects", &base.clone().attr("ci_access"), diags),
        groups: entries(ci, "groups", &base.clone().attr("ci_access"), diags),
    });
    let user_access = object(v, "user_access").map(|ua| UserAccess {
        access_as: string(ua, "access_as").map(|a| match a.as_str() {
            "user" => UserAccessAs::User(Empty {}),
            _ => UserAccessAs::Agent(Empty {}),
        }),
        projects: ids(ua, "projects"),
        groups: ids(ua, "groups"),
    });
    let observability = object(v, "observability").map(|o| Observability {
        logging: object(o, "logging").map(|l| Logging {
            level: string(l, "level"),
            grpc_level: string(l, "grpc_level"),
        }),
    });
    let flux = object(v, "flux").map(|f| Flux {
        webhook_receiver_url: string(f, "webhook_receiver_url"),
    });
    AgentConfig {
        ci_access,
        user_access,
        observability,
        flux,
    }
}

fn ids(v: &Value, name: &str) -> Vec<IdEntry> {
    v.get_attr(name)
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| string(e, "id"))
        .map(|id| IdEntry { id })
        .collect()
}

fn entries(v: &Value, name: &str, base: &AttrPath, diags: &mut Diagnostics) -> Vec<CiAccessEntry> {
    let list = v
        .get_attr(name)
        .and_then(Value::as_list)
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, e)| entry(e, &base.clone().attr(name).index(i as i64), diags))
        .collect()
}

fn entry(e: &Value, path: &AttrPath, diags: &mut Diagnostics) -> CiAccessEntry {
    let impersonate = object(e, "impersonate").map(|imp| Impersonate {
        username: string(imp, "username").unwrap_or_default(),
        uid: string(imp, "uid"),
        groups: strings(imp, "groups"),
        extra: imp
            .get_attr("extra")
            .and_then(Value::as_map)
            .map(|m| {
                m.iter()
                    .map(|(k, vals)| ImpersonateExtra {
                        key: k.clone(),
                        val: vals
                            .as_list()
                            .unwrap_or_default()
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    });
    let access_as = string(e, "access_as");
    let is_impersonate = access_as.as_deref() == Some("impersonate");
    if is_impersonate && impersonate.is_none() {
        diags.error_at(
            path.clone().attr("impersonate"),
            "Missing impersonation identity",
            format!("{path}.access_as is \"impersonate\": set {path}.impersonate = {{ username = \"...\" }}."),
        );
    }
    if !is_impersonate && impersonate.is_some() {
        diags.error_at(
            path.clone().attr("impersonate"),
            "Impersonation without access_as = \"impersonate\"",
            format!("{path}.impersonate is only allowed when {path}.access_as = \"impersonate\"."),
        );
    }
    CiAccessEntry {
        id: string(e, "id").unwrap_or_default(),
        default_namespace: string(e, "default_namespace"),
        access_as: access_as.map(|a| match a.as_str() {
            "impersonate" => AccessAs::Impersonate(impersonate.unwrap_or_default()),
            "ci_job" => AccessAs::CiJob(Empty {}),
            "ci_user" => AccessAs::CiUser(Empty {}),
            _ => AccessAs::Agent(Empty {}),
        }),
        environments: strings(e, "environments"),
        protected_branches_only: boolean(e, "protected_branches_only"),
    }
}

/// The inverse mapping, for import: every attribute present, absent ones null.
fn config_to_value(c: &AgentConfig) -> Value {
    let entry_value = |e: &CiAccessEntry| {
        let impersonate = match &e.access_as {
            Some(AccessAs::Impersonate(imp)) => obj([
                ("username", imp.username.as_str().into()),
                ("uid", opt(imp.uid.clone())),
                ("groups", string_list_or_null(&imp.groups)),
                (
                    "extra",
                    if imp.extra.is_empty() {
                        Value::Null
                    } else {
                        Value::Map(
                            imp.extra
                                .iter()
                                .map(|x| (x.key.clone(), string_list_or_null(&x.val)))
                                .collect(),
                        )
                    },
                ),
            ]),
            _ => Value::Null,
        };
        obj([
            ("id", e.id.as_str().into()),
            ("default_namespace", opt(e.default_namespace.clone())),
            (
                "access_as",
                opt(e.access_as.as_ref().map(AccessAs::keyword)),
            ),
            ("impersonate", impersonate),
            ("environments", string_list_or_null(&e.environments)),
            ("protected_branches_only", opt(e.protected_branches_only)),
        ])
    };
    let list_or_null = |items: Vec<Value>| {
        if items.is_empty() {
            Value::Null
        } else {
            Value::List(items)
        }
    };
    let id_list = |items: &[IdEntry]| {
        list_or_null(
            items
                .iter()
                .map(|i| obj([("id", i.id.as_str().into())]))
                .collect(),
        )
    };
    obj([
        (
            "ci_access",
            c.ci_access.as_ref().map_or(Value::Null, |ci| {
                obj([
                    (
                        "projects",
                        list_or_null(ci.projects.iter().map(entry_value).collect()),
                    ),
                    (
                        "groups",
                        list_or_null(ci.groups.iter().map(entry_value).collect()),
                    ),
                ])
            }),
        ),
        (
            "user_access",
            c.user_access.as_ref().map_or(Value::Null, |ua| {
                obj([
                    (
                        "access_as",
                        opt(ua.access_as.as_ref().map(|a| match a {
                            UserAccessAs::Agent(_) => "agent",
                            UserAccessAs::User(_) => "user",
                        })),
                    ),
                    ("projects", id_list(&ua.projects)),
                    ("groups", id_list(&ua.groups)),
                ])
            }),
        ),
        (
            "observability",
            c.observability.as_ref().map_or(Value::Null, |o| {
                obj([(
                    "logging",
                    o.logging.as_ref().map_or(Value::Null, |l| {
                        obj([
                            ("level", opt(l.level.clone())),
                            ("grpc_level", opt(l.grpc_level.clone())),
                        ])
                    }),
                )])
            }),
        ),
        (
            "flux",
            c.flux.as_ref().map_or(Value::Null, |f| {
                obj([("webhook_receiver_url", opt(f.webhook_receiver_url.clone()))])
            }),
        ),
    ])
}

/// The rendered file for a known `config`, `None` when the file is not managed.
fn rendered(config: &Value) -> DiagResult<Option<String>> {
    if config.is_null() {
        return Ok(None);
    }
    let mut diags = Diagnostics::new();
    let typed = config_from_value(config, &mut diags);
    diags.into_result()?;
    typed.render().map(Some).map_err(|e| {
        Diagnostic::error("Cannot render agent configuration", e.to_string())
            .at(AttrPath::root().attr("config"))
            .into()
    })
}

fn commit_meta(name: &str, verb: &str) -> CommitMeta {
    CommitMeta {
        message: format!("{verb} configuration of GitLab agent {name} (gitlabflux)"),
        author_name: None,
        author_email: None,
    }
}

impl Agent {
    /// Registers (or adopts) the agent unless `prior` already holds it, and syncs its file;
    /// returns the full state.
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        planned: &Value,
        prior: &Value,
    ) -> DiagResult<NewState> {
        let client = gitlab(ctx)?;
        let project_ref = required_string(planned, "project")?;
        let name = required_string(planned, "name")?;
        let project = client
            .project(&project_ref)
            .await
            .map_err(|e| gitlab_error_at(e, AttrPath::root().attr("project")))?;
        // An update keeps the registration (project and name force replacement): posting a
        // create would only be refused as taken and cost a list to adopt it.
        let (agent_id, created_at) =
            match (support::int(prior, "agent_id"), string(prior, "created_at")) {
                (Some(id), Some(created_at)) => (id, created_at),
                _ => {
                    let agent = client
                        .create_agent(&project.path_with_namespace, &name)
                        .await
                        .map_err(gitlab_error)?;
                    (agent.id, agent.created_at)
                }
            };
        let branch =
            string(planned, "config_branch").unwrap_or_else(|| project.default_branch.clone());
        let config = planned.get_attr("config").cloned().unwrap_or(Value::Null);
        let content = rendered(&config)?;
        if let Some(content) = &content {
            let wanted = [WantedFile {
                path: config_file_path(&name),
                content: Some(content.clone()),
            }];
            sync_files(
                client,
                &project.path_with_namespace,
                &branch,
                &wanted,
                &commit_meta(&name, "Update"),
            )
            .await
            .map_err(gitlab_error)?;
        }
        let mut state = planned.clone();
        set(&mut state, "agent_id", agent_id.into());
        set(
            &mut state,
            "kubecontext",
            format!("{}:{}", project.path_with_namespace, name).into(),
        );
        set(
            &mut state,
            "config_file_path",
            config_file_path(&name).into(),
        );
        set(&mut state, "config_yaml", opt(content));
        set(&mut state, "created_at", created_at.into());
        Ok(NewState::new(state))
    }
}

#[async_trait]
impl Resource<ProviderData> for Agent {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project")
                    .required()
                    .requires_replace()
                    .description(
                        "Project holding the agent: full path (`fleet/agents`) or numeric ID.",
                    ),
                Attribute::string("name")
                    .required()
                    .requires_replace()
                    .validator(agent_name_validator)
                    .description(
                        "Agent name: lowercase letters, digits and `-`, at most 63 characters.",
                    ),
                Attribute::string("config_branch").optional().description(
                    "Branch for the configuration file. Default: the project's default branch.",
                ),
                Attribute::bool("keep_config_file")
                    .default(false)
                    .description("Keep the configuration file when the agent is destroyed."),
                config_attribute(),
                Attribute::number("agent_id")
                    .computed()
                    .use_state_for_unknown()
                    .description("GitLab's agent ID."),
                Attribute::string("kubecontext")
                    .computed()
                    .use_state_for_unknown()
                    .description("`<project path>:<agent name>`, the context CI jobs select."),
                Attribute::string("config_file_path")
                    .computed()
                    .description("Path of the configuration file."),
                Attribute::string("config_yaml")
                    .computed()
                    .description("The configuration file's content."),
                Attribute::string("created_at")
                    .computed()
                    .use_state_for_unknown(),
            ])
            .description(
                "A GitLab agent for Kubernetes, shared with projects and groups through its \
                 configuration file (CI access with impersonation, user access, Flux receiver).",
            ),
        )
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        if let Some(c) = object(config, "config").filter(|c| c.is_wholly_known()) {
            let mut diags = Diagnostics::new();
            config_from_value(c, &mut diags);
            diags.into_result()?;
        }
        Ok(())
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        let name = string(&plan.planned, "name");
        if let Some(name) = &name {
            set(
                &mut plan.planned,
                "config_file_path",
                config_file_path(name).into(),
            );
        }
        let config = plan
            .planned
            .get_attr("config")
            .cloned()
            .unwrap_or(Value::Null);
        let yaml = if config.is_wholly_known() {
            opt(rendered(&config)?)
        } else {
            Value::unknown()
        };
        set(&mut plan.planned, "config_yaml", yaml);
        if let (Some(project), Some(name)) = (string(&plan.planned, "project"), &name)
            && project.contains('/')
        {
            set(
                &mut plan.planned,
                "kubecontext",
                format!("{project}:{name}").into(),
            );
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned, &Value::Null).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let client = gitlab(ctx)?;
        let state = current.state;
        let project_ref = required_string(&state, "project")?;
        let project = match client.project(&project_ref).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(gitlab_error(e)),
        };
        let name = required_string(&state, "name")?;
        let Some(agent) = client
            .agent_by_name(&project.path_with_namespace, &name)
            .await
            .map_err(gitlab_error)?
        else {
            return Ok(None);
        };
        let mut new = state.clone();
        set(&mut new, "agent_id", agent.id.into());
        set(
            &mut new,
            "kubecontext",
            format!("{}:{}", project.path_with_namespace, name).into(),
        );
        set(&mut new, "config_file_path", config_file_path(&name).into());
        set(&mut new, "created_at", agent.created_at.as_str().into());
        let imported = current.private == IMPORTED;
        let managed = imported || !state.get_attr("config").is_none_or(Value::is_null);
        if managed {
            let branch = string(&state, "config_branch").unwrap_or(project.default_branch.clone());
            let text = read_text(
                client,
                &project.path_with_namespace,
                &branch,
                &config_file_path(&name),
            )
            .await
            .map_err(gitlab_error)?;
            if imported && let Some(text) = &text {
                let parsed = AgentConfig::parse(text).map_err(|e| {
                    Diagnostic::error("Unreadable agent configuration file", e.to_string())
                })?;
                set(&mut new, "config", config_to_value(&parsed));
            }
            set(&mut new, "config_yaml", opt(text));
        } else {
            set(&mut new, "config_yaml", Value::Null);
        }
        Ok(Some(NewState::new(new)))
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let was_managed = !req.prior.get_attr("config").is_none_or(Value::is_null);
        let now_managed = !req.planned.get_attr("config").is_none_or(Value::is_null);
        if was_managed && !now_managed {
            // The user stopped managing the file: leave it as it is.
            ctx.warn(Diagnostic::warning(
                "Configuration file no longer managed",
                "config was removed, so the agent's configuration file is left in the repository as it is.",
            ));
        }
        self.apply(ctx, &req.planned, &req.prior).await
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let client = gitlab(ctx)?;
        let state = prior.state;
        let project_ref = required_string(&state, "project")?;
        let name = required_string(&state, "name")?;
        let project = match client.project(&project_ref).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(gitlab_error(e)),
        };
        if let Some(id) = support::int(&state, "agent_id") {
            client
                .delete_agent(&project.path_with_namespace, id)
                .await
                .map_err(gitlab_error)?;
        }
        let managed = !state.get_attr("config").is_none_or(Value::is_null);
        if managed && !boolean(&state, "keep_config_file").unwrap_or(false) {
            let branch = string(&state, "config_branch").unwrap_or(project.default_branch.clone());
            let wanted = [WantedFile {
                path: config_file_path(&name),
                content: None,
            }];
            sync_files(
                client,
                &project.path_with_namespace,
                &branch,
                &wanted,
                &commit_meta(&name, "Remove"),
            )
            .await
            .map_err(gitlab_error)?;
        }
        Ok(())
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (project, name) =
            split_import_id(id, ':', "<project path>:<agent name>", "fleet/agents:prod")?;
        let state = obj([
            ("project", project.into()),
            ("name", name.into()),
            ("config_branch", Value::Null),
            ("keep_config_file", false.into()),
            ("config", Value::Null),
            ("agent_id", Value::Null),
            ("kubecontext", Value::Null),
            ("config_file_path", Value::Null),
            ("config_yaml", Value::Null),
            ("created_at", Value::Null),
        ]);
        Ok(NewState {
            state,
            private: IMPORTED.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplug::value::decode_json;

    fn config_value(json: &str) -> Value {
        let ty = config_attribute().value_type();
        decode_json(json.as_bytes(), &ty).expect("config JSON")
    }

    #[test]
    fn impersonate_is_required_exactly_with_access_as_impersonate() {
        let mut diags = Diagnostics::new();
        config_from_value(
            &config_value(
                r#"{"ci_access": {"groups": [{"id": "fleet", "access_as": "impersonate"}]}}"#,
            ),
            &mut diags,
        );
        let d = diags.iter().next().expect("diagnostic");
        assert_eq!(
            d.attribute.as_ref().map(ToString::to_string).as_deref(),
            Some("config.ci_access.groups[0].impersonate")
        );

        let mut diags = Diagnostics::new();
        config_from_value(
            &config_value(
                r#"{"ci_access": {"projects": [{"id": "p", "access_as": "ci_job", "impersonate": {"username": "x"}}]}}"#,
            ),
            &mut diags,
        );
        assert!(diags.has_errors());
    }

    #[test]
    fn value_and_file_round_trip() {
        let v = config_value(
            r#"{"ci_access": {"groups": [{"id": "fleet", "access_as": "impersonate", "impersonate": {"username": "ci-deployer", "groups": ["fleet-ci"]}}],
                              "projects": [{"id": "fleet/gitops", "access_as": "ci_job", "environments": ["production"]}]},
                "flux": {"webhook_receiver_url": "http://webhook-receiver.flux-system.svc.cluster.local"}}"#,
        );
        let mut diags = Diagnostics::new();
        let typed = config_from_value(&v, &mut diags);
        assert!(diags.is_empty(), "{diags}");
        let text = typed.render().expect("render");
        let back = config_to_value(&AgentConfig::parse(&text).expect("parse"));
        assert_eq!(back, v);
    }
}
