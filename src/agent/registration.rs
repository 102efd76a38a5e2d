//! An agent's registration in its GitLab project and its configuration file: registered
//! once, the file committed atomically through the commits API and only when its content
//! changes, read back for drift, and removed on destroy (the file only when asked).

use super::AgentError;
use super::config::{AgentConfig, HEADER, config_file_path};
use crate::digest::git_blob_id;
use crate::gitlab::error::{CREATE_AGENT, Role};
use crate::gitlab::files::{CommitMeta, WantedFile, read_text, sync_files};
use crate::gitlab::{Agent, GitlabClient, GitlabError, Project};

/// GitLab's Maintainer access level.
const MAINTAINER: u32 = 40;

/// What the user declares about an agent.
#[derive(Clone, Debug)]
pub struct AgentSpec<'a> {
    /// Full path or numeric ID.
    pub project: &'a str,
    pub name: &'a str,
    /// Branch of the configuration file; the project's default branch when `None`.
    pub config_branch: Option<&'a str>,
    /// `None`: the file is not managed.
    pub config: Option<&'a AgentConfig>,
    /// Take over an agent of this name that something else registered.
    pub adopt_existing: bool,
}

/// GitLab's registration of an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub agent_id: i64,
    pub created_at: String,
}

/// What GitLab says about a registered agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentFacts {
    pub registration: Registration,
    /// `<project path>:<agent name>`, the context CI jobs select.
    pub kubecontext: String,
    pub config_file_path: String,
    /// The configuration file's content, when it is managed (or, on read, present).
    pub config_yaml: Option<String>,
}

/// `<project path>:<agent name>`, as GitLab CI names the agent's kubecontext.
pub fn kubecontext(project_path: &str, name: &str) -> String {
    format!("{project_path}:{name}")
}

/// The file content for a configuration, `None` when the file is not managed.
pub fn render(config: Option<&AgentConfig>) -> Result<Option<String>, AgentError> {
    Ok(config.map(AgentConfig::render).transpose()?)
}

async fn project(client: &GitlabClient, project: &str) -> Result<Project, AgentError> {
    client.project(project).await.map_err(AgentError::Project)
}

/// `None` when the project is gone (then so is the agent).
async fn project_if_present(
    client: &GitlabClient,
    project: &str,
) -> Result<Option<Project>, AgentError> {
    match client.project(project).await {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(AgentError::Gitlab(e)),
    }
}

fn commit_meta(name: &str, verb: &str) -> CommitMeta {
    CommitMeta {
        message: format!("{verb} configuration of GitLab agent {name} (gitlabflux)"),
        author_name: None,
        author_email: None,
    }
}

/// Registers the agent unless `registered` already holds it, and commits its configuration
/// file when managed and changed.
pub async fn ensure(
    client: &GitlabClient,
    spec: &AgentSpec<'_>,
    registered: Option<Registration>,
) -> Result<AgentFacts, AgentError> {
    let project = project(client, spec.project).await?;
    let path = &project.path_with_namespace;
    // A file that cannot be committed must not leave a registered agent behind.
    if spec.config.is_some()
        && let Some(branch) = spec.config_branch
        && !client.branch_exists(path, branch).await?
    {
        return Err(AgentError::NoBranch {
            project: path.clone(),
            branch: branch.to_string(),
        });
    }
    let branch = spec.config_branch.unwrap_or(&project.default_branch);
    // An update keeps the registration (project and name force replacement). A create first
    // makes sure the name is free, or the agent ours (or adopted).
    let claimed = match &registered {
        Some(_) => None,
        None => {
            check_may_register(&project)?;
            Some(claim(client, spec, path, branch).await?)
        }
    };
    // The file before the registration: an apply cut short between the two then finds the
    // agent by its file's header and takes it over, instead of refusing it as foreign.
    let content = render(spec.config)?;
    if let Some(content) = &content {
        let wanted = [WantedFile {
            path: config_file_path(spec.name),
            content: Some(content.clone()),
        }];
        sync_files(
            client,
            path,
            branch,
            &wanted,
            &commit_meta(spec.name, "Update"),
        )
        .await?;
    }
    let registration = match (registered, claimed) {
        (Some(r), _) => r,
        (None, Some(Some(agent))) => Registration::of(agent),
        (None, _) => Registration::of(create(client, spec, path).await?),
    };
    Ok(AgentFacts {
        registration,
        kubecontext: kubecontext(path, spec.name),
        config_file_path: config_file_path(spec.name),
        config_yaml: content,
    })
}

/// GitLab lets Maintainers register agents; a lesser role is told so before anything is
/// looked up (a Reporter cannot even list agents, and would hear "not found").
fn check_may_register(project: &Project) -> Result<(), AgentError> {
    if project.access_level.is_some_and(|level| level < MAINTAINER) {
        return Err(AgentError::Project(GitlabError::Forbidden {
            op: CREATE_AGENT,
            project: project.path_with_namespace.clone(),
            needed_role: Role::Maintainer,
            missing_scope: None,
            message: "the token's user may not register agents".into(),
        }));
    }
    Ok(())
}

/// The agent of that name already there, when it may be taken over: it is ours (its
/// configuration file carries our header: an earlier apply was cut short after registering
/// it) or the user opted in. Any other is refused, never silently adopted, since destroying
/// the resource would delete it and revoke its tokens. `None` when the name is free.
async fn claim(
    client: &GitlabClient,
    spec: &AgentSpec<'_>,
    path: &str,
    branch: &str,
) -> Result<Option<Agent>, AgentError> {
    let Some(existing) = client.agent_by_name(path, spec.name).await? else {
        return Ok(None);
    };
    if spec.adopt_existing || file_is_ours(client, path, branch, spec.name).await? {
        return Ok(Some(existing));
    }
    Err(AgentError::Exists {
        project: path.to_string(),
        name: spec.name.to_string(),
        id: existing.id,
    })
}

/// Registers the agent under a free name.
async fn create(
    client: &GitlabClient,
    spec: &AgentSpec<'_>,
    path: &str,
) -> Result<Agent, AgentError> {
    match client.create_agent(path, spec.name).await {
        Ok(agent) => Ok(agent),
        // Registered by someone else between our look and our create.
        Err(e) if e.is_conflict() => {
            let id = client
                .agent_by_name(path, spec.name)
                .await?
                .map_or(0, |a| a.id);
            Err(AgentError::Exists {
                project: path.to_string(),
                name: spec.name.to_string(),
                id,
            })
        }
        Err(e) => Err(e.into()),
    }
}

impl Registration {
    fn of(agent: Agent) -> Self {
        Self {
            agent_id: agent.id,
            created_at: agent.created_at,
        }
    }
}

/// Whether the agent's configuration file was written by this provider.
async fn file_is_ours(
    client: &GitlabClient,
    project: &str,
    branch: &str,
    name: &str,
) -> Result<bool, AgentError> {
    let text = read_text(client, project, branch, &config_file_path(name)).await?;
    Ok(text.is_some_and(|t| t.starts_with(HEADER)))
}

/// What a read learns of an agent's configuration file.
#[derive(Clone, Copy, Debug)]
pub enum ConfigRead<'a> {
    /// Nothing: the file is not managed.
    Skip,
    /// Its content.
    Content,
    /// Its content, expected to be this (the last one read): checked against the directory's
    /// tree listing, which a refresh of every agent of the project shares, and fetched only
    /// when it differs.
    Expect(&'a str),
}

/// The directory of every agent's configuration file.
const AGENTS_DIR: &str = ".gitlab/agents";

/// Reads an agent back: `None` when the project or the agent is gone; the configuration
/// file's current content as `file` asks (`None` when it is missing).
pub async fn read(
    client: &GitlabClient,
    spec: &AgentSpec<'_>,
    file: ConfigRead<'_>,
) -> Result<Option<AgentFacts>, AgentError> {
    match project_if_present(client, spec.project).await? {
        Some(project) => read_in(client, &project, spec, file).await,
        None => Ok(None),
    }
}

async fn read_in(
    client: &GitlabClient,
    project: &Project,
    spec: &AgentSpec<'_>,
    file: ConfigRead<'_>,
) -> Result<Option<AgentFacts>, AgentError> {
    let path = &project.path_with_namespace;
    let Some(agent) = client.agent_by_name(path, spec.name).await? else {
        return Ok(None);
    };
    let branch = spec.config_branch.unwrap_or(&project.default_branch);
    let file_path = config_file_path(spec.name);
    let config_yaml = match file {
        ConfigRead::Skip => None,
        ConfigRead::Content => read_text(client, path, branch, &file_path).await?,
        ConfigRead::Expect(expected) => {
            let blobs = client.blob_ids(path, branch, AGENTS_DIR).await?;
            match blobs.get(&file_path) {
                None => None,
                Some(id) if *id == git_blob_id(expected.as_bytes()) => Some(expected.to_string()),
                Some(_) => read_text(client, path, branch, &file_path).await?,
            }
        }
    };
    Ok(Some(AgentFacts {
        registration: Registration {
            agent_id: agent.id,
            created_at: agent.created_at,
        },
        kubecontext: kubecontext(path, spec.name),
        config_file_path: config_file_path(spec.name),
        config_yaml,
    }))
}

/// An existing agent, for the data source: its file is read from the default branch.
pub async fn lookup(
    client: &GitlabClient,
    project_ref: &str,
    name: &str,
) -> Result<AgentFacts, AgentError> {
    let project = project(client, project_ref).await?;
    let spec = AgentSpec {
        project: project_ref,
        name,
        config_branch: None,
        config: None,
        adopt_existing: false,
    };
    read_in(client, &project, &spec, ConfigRead::Content)
        .await?
        .ok_or_else(|| AgentError::AgentNotFound {
            project: project.path_with_namespace.clone(),
            name: name.to_string(),
        })
}

/// The project's path and the names of its agents, for `terraform query`.
pub async fn agent_names(
    client: &GitlabClient,
    project_ref: &str,
) -> Result<(String, Vec<String>), AgentError> {
    let project = project(client, project_ref).await?;
    let path = project.path_with_namespace;
    let names = client
        .agents(&path)
        .await?
        .iter()
        .map(|a| a.name.clone())
        .collect();
    Ok((path, names))
}

/// Deletes the registration and, when `delete_file`, the configuration file (in one commit;
/// none when the file is already gone). A project that is gone leaves nothing to do.
pub async fn remove(
    client: &GitlabClient,
    spec: &AgentSpec<'_>,
    agent_id: Option<i64>,
    delete_file: bool,
) -> Result<(), AgentError> {
    let Some(project) = project_if_present(client, spec.project).await? else {
        return Ok(());
    };
    let path = &project.path_with_namespace;
    if let Some(id) = agent_id {
        client.delete_agent(path, id).await?;
    }
    if delete_file {
        let branch = spec.config_branch.unwrap_or(&project.default_branch);
        let wanted = [WantedFile {
            path: config_file_path(spec.name),
            content: None,
        }];
        sync_files(
            client,
            path,
            branch,
            &wanted,
            &commit_meta(spec.name, "Remove"),
        )
        .await?;
    }
    Ok(())
}
