//! `gitlabflux_agent`: a GitLab agent for Kubernetes registered in a project, with its
//! `.gitlab/agents/<name>/config.yaml` committed atomically (no commit when unchanged).
//! Import ID: `<project path>:<agent name>`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{ProviderData, gitlab};
use super::support::{agent_error, split_import_id};
use crate::agent::config::{
    AccessAs, AgentConfig, CiAccess, CiAccessEntry, Empty, FLUX_RECEIVER_PORT, Flux, IdEntry,
    Impersonate, ImpersonateExtra, Logging, MAX_ENTRIES, Observability, UserAccess, UserAccessAs,
    config_file_path, reaches_flux_receiver,
};
use crate::agent::registration::{self, AgentFacts, AgentSpec, ConfigRead, Registration};
use crate::gitlab::names::validate_agent_name;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics,
    IdentityAttribute, IdentitySchema, Nesting, NewState, PlanContext, Resource, Schema, Type,
    Value,
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
            Attribute::object(
                "flux",
                vec![Attribute::string("webhook_receiver_url").optional().description(
                    "Flux's webhook receiver, e.g. \
                     `http://webhook-receiver.flux-system.svc.cluster.local/hook/<path>`: from \
                     Flux 2.9 on, the network policy admits only its port 9292, which that \
                     Service forwards to.",
                )],
            )
            .optional()
            .description("Receiver the agent notifies on push, for immediate Flux reconciliation."),
        ],
    )
    .optional()
    .description("Agent configuration, rendered to `.gitlab/agents/<name>/config.yaml`. Null: the file is not managed.")
}

/// The resource's attributes.
#[derive(Debug, Serialize, Deserialize)]
struct AgentModel {
    project: String,
    name: String,
    config_branch: Option<String>,
    keep_config_file: bool,
    adopt_existing: bool,
    config: Option<ConfigModel>,
    agent_id: Option<i64>,
    kubecontext: Option<String>,
    config_file_path: Option<String>,
    config_yaml: Option<String>,
    created_at: Option<String>,
}

/// `config`, shaped as users write it: `access_as` is a keyword with the identity beside
/// it, where the file nests the identity under the keyword.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ConfigModel {
    ci_access: Option<CiAccessModel>,
    user_access: Option<UserAccessModel>,
    observability: Option<ObservabilityModel>,
    flux: Option<FluxModel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CiAccessModel {
    projects: Option<Vec<AccessEntryModel>>,
    groups: Option<Vec<AccessEntryModel>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AccessEntryModel {
    id: String,
    default_namespace: Option<String>,
    access_as: Option<String>,
    impersonate: Option<ImpersonateModel>,
    environments: Option<Vec<String>>,
    protected_branches_only: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ImpersonateModel {
    username: String,
    uid: Option<String>,
    groups: Option<Vec<String>>,
    extra: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UserAccessModel {
    access_as: Option<String>,
    projects: Option<Vec<IdEntry>>,
    groups: Option<Vec<IdEntry>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ObservabilityModel {
    logging: Option<Logging>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FluxModel {
    webhook_receiver_url: Option<String>,
}

/// Why a receiver URL may stop working with Flux 2.9, and what to point it at instead.
fn receiver_note(url: &str) -> Diagnostic {
    Diagnostic::warning(
        "The webhook receiver URL may be blocked from Flux 2.9 on",
        format!(
            "Flux 2.9's allow-webhooks NetworkPolicy admits only TCP {FLUX_RECEIVER_PORT} to \
             notification-controller, its webhook receiver; {url:?} names neither the \
             webhook-receiver Service (which forwards to it) nor that port. Use \
             http://webhook-receiver.<flux namespace>.svc.cluster.local/hook/<path> so the \
             agent's pushes still reach Flux."
        ),
    )
    .at(AttrPath::root()
        .attr("config")
        .attr("flux")
        .attr("webhook_receiver_url"))
}

/// Absent and empty lists are the same in the file; in the model, empty reads as absent so
/// that an imported configuration plans clean against one that omits the list.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

impl ConfigModel {
    /// Checks the rules the schema cannot state, reporting on the entry at fault.
    fn check(&self, diags: &mut Diagnostics) {
        let Some(ci) = &self.ci_access else { return };
        let base = AttrPath::root().attr("config").attr("ci_access");
        for (list, entries) in [("projects", &ci.projects), ("groups", &ci.groups)] {
            for (i, entry) in entries.iter().flatten().enumerate() {
                entry.check(&base.clone().attr(list).index(i as i64), diags);
            }
        }
    }

    fn to_config(&self) -> AgentConfig {
        AgentConfig {
            ci_access: self.ci_access.as_ref().map(|ci| CiAccess {
                projects: entries_to_config(&ci.projects),
                groups: entries_to_config(&ci.groups),
            }),
            user_access: self.user_access.as_ref().map(|ua| UserAccess {
                access_as: ua.access_as.as_deref().map(|a| match a {
                    "user" => UserAccessAs::User(Empty {}),
                    _ => UserAccessAs::Agent(Empty {}),
                }),
                projects: ua.projects.clone().unwrap_or_default(),
                groups: ua.groups.clone().unwrap_or_default(),
            }),
            observability: self.observability.as_ref().map(|o| Observability {
                logging: o.logging.clone(),
            }),
            flux: self.flux.as_ref().map(|f| Flux {
                webhook_receiver_url: f.webhook_receiver_url.clone(),
            }),
        }
    }

    fn from_config(c: &AgentConfig) -> Self {
        ConfigModel {
            ci_access: c.ci_access.as_ref().map(|ci| CiAccessModel {
                projects: non_empty(
                    ci.projects
                        .iter()
                        .map(AccessEntryModel::from_entry)
                        .collect(),
                ),
                groups: non_empty(ci.groups.iter().map(AccessEntryModel::from_entry).collect()),
            }),
            user_access: c.user_access.as_ref().map(|ua| UserAccessModel {
                access_as: ua.access_as.as_ref().map(|a| match a {
                    UserAccessAs::Agent(_) => "agent".to_string(),
                    UserAccessAs::User(_) => "user".to_string(),
                }),
                projects: non_empty(ua.projects.clone()),
                groups: non_empty(ua.groups.clone()),
            }),
            observability: c.observability.as_ref().map(|o| ObservabilityModel {
                logging: o.logging.clone(),
            }),
            flux: c.flux.as_ref().map(|f| FluxModel {
                webhook_receiver_url: f.webhook_receiver_url.clone(),
            }),
        }
    }
}

fn entries_to_config(entries: &Option<Vec<AccessEntryModel>>) -> Vec<CiAccessEntry> {
    entries
        .iter()
        .flatten()
        .map(AccessEntryModel::to_entry)
        .collect()
}

impl AccessEntryModel {
    fn check(&self, path: &AttrPath, diags: &mut Diagnostics) {
        let is_impersonate = self.access_as.as_deref() == Some("impersonate");
        if is_impersonate && self.impersonate.is_none() {
            diags.error_at(
                path.clone().attr("impersonate"),
                "Missing impersonation identity",
                format!("{path}.access_as is \"impersonate\": set {path}.impersonate = {{ username = \"...\" }}."),
            );
        }
        if !is_impersonate && self.impersonate.is_some() {
            diags.error_at(
                path.clone().attr("impersonate"),
                "Impersonation without access_as = \"impersonate\"",
                format!(
                    "{path}.impersonate is only allowed when {path}.access_as = \"impersonate\"."
                ),
            );
        }
    }

    fn to_entry(&self) -> CiAccessEntry {
        let impersonate = || {
            self.impersonate
                .as_ref()
                .map(|imp| Impersonate {
                    username: imp.username.clone(),
                    uid: imp.uid.clone(),
                    groups: imp.groups.clone().unwrap_or_default(),
                    extra: imp
                        .extra
                        .iter()
                        .flatten()
                        .map(|(key, val)| ImpersonateExtra {
                            key: key.clone(),
                            val: val.clone(),
                        })
                        .collect(),
                })
                .unwrap_or_default()
        };
        CiAccessEntry {
            id: self.id.clone(),
            default_namespace: self.default_namespace.clone(),
            access_as: self.access_as.as_deref().map(|a| match a {
                "impersonate" => AccessAs::Impersonate(impersonate()),
                "ci_job" => AccessAs::CiJob(Empty {}),
                "ci_user" => AccessAs::CiUser(Empty {}),
                _ => AccessAs::Agent(Empty {}),
            }),
            environments: self.environments.clone().unwrap_or_default(),
            protected_branches_only: self.protected_branches_only,
        }
    }

    fn from_entry(e: &CiAccessEntry) -> Self {
        let impersonate = match &e.access_as {
            Some(AccessAs::Impersonate(imp)) => Some(ImpersonateModel {
                username: imp.username.clone(),
                uid: imp.uid.clone(),
                groups: non_empty(imp.groups.clone()),
                extra: (!imp.extra.is_empty()).then(|| {
                    imp.extra
                        .iter()
                        .map(|x| (x.key.clone(), x.val.clone()))
                        .collect()
                }),
            }),
            _ => None,
        };
        AccessEntryModel {
            id: e.id.clone(),
            default_namespace: e.default_namespace.clone(),
            access_as: e.access_as.as_ref().map(|a| a.keyword().to_string()),
            impersonate,
            environments: non_empty(e.environments.clone()),
            protected_branches_only: e.protected_branches_only,
        }
    }
}

/// The typed configuration for a `config` attribute, checked; `None` when not managed.
fn agent_config(config: Option<&ConfigModel>) -> DiagResult<Option<AgentConfig>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let mut diags = Diagnostics::new();
    config.check(&mut diags);
    diags.into_result()?;
    Ok(Some(config.to_config()))
}

impl AgentModel {
    fn spec<'a>(&'a self, config: Option<&'a AgentConfig>) -> AgentSpec<'a> {
        AgentSpec {
            project: &self.project,
            name: &self.name,
            config_branch: self.config_branch.as_deref(),
            config,
            adopt_existing: self.adopt_existing,
        }
    }

    fn registration(&self) -> Option<Registration> {
        Some(Registration {
            agent_id: self.agent_id?,
            created_at: self.created_at.clone()?,
        })
    }

    fn record(&mut self, facts: AgentFacts) {
        self.agent_id = Some(facts.registration.agent_id);
        self.created_at = Some(facts.registration.created_at);
        self.kubecontext = Some(facts.kubecontext);
        self.config_file_path = Some(facts.config_file_path);
        self.config_yaml = facts.config_yaml;
    }
}

impl Agent {
    /// Registers the agent unless `model` already holds it, and syncs its file.
    async fn apply(&self, ctx: &Ctx<ProviderData>, mut model: AgentModel) -> DiagResult<NewState> {
        let config = agent_config(model.config.as_ref())?;
        let facts = registration::ensure(
            gitlab(ctx)?,
            &model.spec(config.as_ref()),
            model.registration(),
        )
        .await
        .map_err(agent_error)?;
        model.record(facts);
        NewState::encode(&model)
    }
}

#[async_trait]
impl Resource<ProviderData> for Agent {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("project", &["project"])
                    .description("Path of the project that holds the agent."),
                IdentityAttribute::string("name", &["name"]).description("Agent name."),
            ],
            import_id: |parts| parts.join(":"),
        })
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
                Attribute::bool("adopt_existing")
                    .default(false)
                    .description(
                        "Take over an agent of this name that already exists and was not \
                         registered by this resource (destroying the resource then deletes it \
                         and revokes its tokens). Off: such an apply fails and changes nothing; \
                         `terraform import` is the other way in. An agent this provider \
                         registered in an apply that was cut short is recognised by its \
                         configuration file and taken over either way.",
                    ),
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

    async fn validate(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        // Only `config`, once known: defaults are not applied to a configuration yet, and
        // other attributes (often the project) may still be unknown.
        #[derive(Deserialize)]
        struct ConfigOnly {
            config: Option<ConfigModel>,
        }
        if config.knows(&["config"]) {
            let model: ConfigOnly = config.decode()?;
            agent_config(model.config.as_ref())?;
            let receiver = model.config.as_ref().and_then(|c| c.flux.as_ref());
            if let Some(url) = receiver.and_then(|f| f.webhook_receiver_url.as_deref())
                && !reaches_flux_receiver(url)
            {
                ctx.warn(receiver_note(url));
            }
        }
        Ok(())
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        // Each computed value is planned as soon as what it follows from is known.
        #[derive(Deserialize)]
        struct Inputs {
            project: Option<String>,
            name: Option<String>,
            config: Option<ConfigModel>,
        }
        #[derive(Serialize)]
        struct FilePath {
            config_file_path: String,
        }
        #[derive(Serialize)]
        struct FileContent {
            config_yaml: Option<String>,
        }
        #[derive(Serialize)]
        struct Context {
            kubecontext: String,
        }
        let inputs: Inputs = plan.planned.decode()?;
        if let Some(name) = inputs.name.as_deref().filter(|_| plan.knows(&["name"])) {
            plan.overlay(&FilePath {
                config_file_path: config_file_path(name),
            })?;
            // A numeric project ID says nothing of the path: the context waits for apply.
            if let Some(project) = inputs.project.as_deref().filter(|p| p.contains('/')) {
                plan.overlay(&Context {
                    kubecontext: registration::kubecontext(project, name),
                })?;
            }
        }
        if plan.knows(&["config"]) {
            let config = agent_config(inputs.config.as_ref())?;
            plan.overlay(&FileContent {
                config_yaml: registration::render(config.as_ref()).map_err(agent_error)?,
            })?;
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, req.planned.decode()?).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut model: AgentModel = current.state.decode()?;
        let imported = current.private == IMPORTED;
        let managed = imported || model.config.is_some();
        let file = match (&model.config_yaml, managed) {
            (_, false) => ConfigRead::Skip,
            (Some(last), true) if !imported => ConfigRead::Expect(last),
            (_, true) => ConfigRead::Content,
        };
        let Some(facts) = registration::read(gitlab(ctx)?, &model.spec(None), file)
            .await
            .map_err(agent_error)?
        else {
            return Ok(None);
        };
        if imported && let Some(text) = &facts.config_yaml {
            let parsed = AgentConfig::parse(text).map_err(|e| agent_error(e.into()))?;
            model.config = Some(ConfigModel::from_config(&parsed));
        }
        model.record(facts);
        NewState::encode(&model).map(Some)
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let prior: AgentModel = req.prior.decode()?;
        let planned: AgentModel = req.planned.decode()?;
        if prior.config.is_some() && planned.config.is_none() {
            // The user stopped managing the file: leave it as it is.
            ctx.warn(Diagnostic::warning(
                "Configuration file no longer managed",
                "config was removed, so the agent's configuration file is left in the repository as it is.",
            ));
        }
        self.apply(ctx, planned).await
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let model: AgentModel = prior.state.decode()?;
        let delete_file = model.config.is_some() && !model.keep_config_file;
        registration::remove(gitlab(ctx)?, &model.spec(None), model.agent_id, delete_file)
            .await
            .map_err(agent_error)
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (project, name) =
            split_import_id(id, ':', "<project path>:<agent name>", "fleet/agents:prod")?;
        // Read completes the rest, and rebuilds `config` from the file (see IMPORTED).
        #[derive(Serialize)]
        struct Imported<'a> {
            project: &'a str,
            name: &'a str,
        }
        let model = Imported { project, name };
        Ok(NewState::encode(&model)?.with_private(IMPORTED.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplug::value::decode_json;

    fn config_model(json: &str) -> (Value, ConfigModel) {
        let ty = config_attribute().value_type();
        let value = decode_json(json.as_bytes(), &ty).expect("config JSON");
        let model = value.decode().expect("config model");
        (value, model)
    }

    #[test]
    fn impersonate_is_required_exactly_with_access_as_impersonate() {
        let (_, model) = config_model(
            r#"{"ci_access": {"groups": [{"id": "fleet", "access_as": "impersonate"}]}}"#,
        );
        let mut diags = Diagnostics::new();
        model.check(&mut diags);
        let d = diags.iter().next().expect("diagnostic");
        assert_eq!(
            d.attribute.as_ref().map(ToString::to_string).as_deref(),
            Some("config.ci_access.groups[0].impersonate")
        );

        let (_, model) = config_model(
            r#"{"ci_access": {"projects": [{"id": "p", "access_as": "ci_job", "impersonate": {"username": "x"}}]}}"#,
        );
        let mut diags = Diagnostics::new();
        model.check(&mut diags);
        assert!(diags.has_errors());
    }

    #[test]
    fn value_and_file_round_trip() {
        let (v, model) = config_model(
            r#"{"ci_access": {"groups": [{"id": "fleet", "access_as": "impersonate", "impersonate": {"username": "ci-deployer", "groups": ["fleet-ci"]}}],
                              "projects": [{"id": "fleet/gitops", "access_as": "ci_job", "environments": ["production"]}]},
                "flux": {"webhook_receiver_url": "http://webhook-receiver.flux-system.svc.cluster.local"}}"#,
        );
        let mut diags = Diagnostics::new();
        model.check(&mut diags);
        assert!(diags.is_empty(), "{diags}");
        let text = model.to_config().render().expect("render");
        let back = ConfigModel::from_config(&AgentConfig::parse(&text).expect("parse"));
        let back = Value::encode(&back)
            .expect("encode")
            .conform(&config_attribute().value_type())
            .expect("conform");
        assert_eq!(back, v);
    }
}
