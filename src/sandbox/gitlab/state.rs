//! The emulator's world: users, tokens, the `fleet` group, projects and everything hanging off
//! them, as one serialisable value so persistence is a plain JSON dump. Token values are never
//! stored, only their SHA-256 hashes.

use std::collections::BTreeMap;

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::{ApiError, ApiResult, now_iso, today};
use super::repository::Repository;

pub(crate) const GUEST: u32 = 10;
pub(crate) const REPORTER: u32 = 20;
pub(crate) const DEVELOPER: u32 = 30;
pub(crate) const MAINTAINER: u32 = 40;
pub(crate) const OWNER: u32 = 50;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Ids {
    pub user: u64,
    pub group: u64,
    pub project: u64,
    pub personal_token: u64,
    pub agent: u64,
    pub agent_token: u64,
    pub deploy_key: u64,
    pub access_token: u64,
}

impl Ids {
    fn bump(counter: &mut u64) -> u64 {
        *counter += 1;
        *counter
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub admin: bool,
    pub bot: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersonalToken {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub token_hash: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub created_at: String,
    /// user id -> access level
    pub members: BTreeMap<u64, u32>,
    #[serde(default)]
    pub variables: Vec<Variable>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Project {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub group_id: u64,
    pub created_at: String,
    pub default_branch: String,
    /// Direct project members (project bots): user id -> access level.
    pub members: BTreeMap<u64, u32>,
    pub repo: Repository,
    pub deploy_keys: Vec<DeployKey>,
    pub variables: Vec<Variable>,
    #[serde(default)]
    pub terraform_states: BTreeMap<String, TerraformState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Agent {
    pub id: u64,
    pub project_id: u64,
    pub name: String,
    pub created_at: String,
    pub created_by_user_id: u64,
    /// The most tokens that were ever active at once, for assertions on rotations.
    #[serde(default)]
    pub max_active_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AgentToken {
    pub id: u64,
    pub agent_id: u64,
    pub name: String,
    pub description: Option<String>,
    pub token_hash: String,
    pub revoked: bool,
    /// When it was revoked: tests check a rotation revoked the old token only after the new
    /// one was in use.
    #[serde(default)]
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub created_by_user_id: u64,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeployKey {
    pub id: u64,
    pub title: String,
    pub key: String,
    pub fingerprint: String,
    pub fingerprint_sha256: String,
    pub can_push: bool,
    pub expires_at: Option<String>,
    pub created_at: String,
    /// What answers show instead of the key's comment: its creator's name and the host.
    #[serde(default)]
    pub masked_comment: String,
}

/// A GitLab-managed Terraform state: every version kept, and the lock when one is held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TerraformState {
    pub versions: Vec<TerraformVersion>,
    pub lock: Option<TerraformLock>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TerraformVersion {
    pub serial: u64,
    pub body: String,
    pub created_at: String,
    pub created_by: String,
}

/// Terraform's lock document, as the lock holder sent it (`Who` is the GitLab user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TerraformLock {
    pub id: String,
    pub operation: String,
    pub info: String,
    pub who: String,
    pub version: String,
    pub created: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Variable {
    pub key: String,
    pub value: String,
    pub variable_type: String,
    pub protected: bool,
    pub masked: bool,
    pub hidden: bool,
    pub raw: bool,
    pub environment_scope: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessToken {
    pub id: u64,
    pub project_id: u64,
    pub user_id: u64,
    pub name: String,
    pub description: Option<String>,
    pub token_hash: String,
    pub scopes: Vec<String>,
    pub access_level: u32,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct World {
    pub ids: Ids,
    pub users: Vec<User>,
    pub personal_tokens: Vec<PersonalToken>,
    pub groups: Vec<Group>,
    pub projects: Vec<Project>,
    pub agents: Vec<Agent>,
    pub agent_tokens: Vec<AgentToken>,
    pub access_tokens: Vec<AccessToken>,
    #[serde(default)]
    pub settings: InstanceSettings,
}

/// Instance-wide settings an administrator sets (`PUT /application/settings`); the admin
/// API sets them in the sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceSettings {
    /// Maximum lifetime of SSH keys, in days (GitLab Ultimate's `max_ssh_key_lifetime`).
    pub max_ssh_key_lifetime: Option<u64>,
}

/// Who is calling, resolved from the request's token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user_id: u64,
    pub scopes: Vec<String>,
}

pub(crate) fn hash_token(value: &str) -> String {
    crate::digest::sha256_hex(value.as_bytes())
}

/// A fresh secret: `prefix` + URL-safe random characters from the system CSPRNG.
pub(crate) fn new_token_value(prefix: &str, random_bytes: usize) -> String {
    let mut bytes = vec![0u8; random_bytes];
    // SystemRandom only fails if the OS has no entropy source; a zeroed token would be
    // guessable, so fall back to hashing the clock with the process id instead of panicking.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        let digest = Sha256::digest(seed.as_bytes());
        for (b, d) in bytes.iter_mut().zip(digest.iter().cycle()) {
            *b = *d;
        }
    }
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl World {
    /// The seeded world of the sandbox contract.
    pub fn seeded() -> Self {
        let mut w = World::default();
        let root = w.add_user("root", "Administrator", true, false);
        let group = w.add_group("fleet", root);
        for name in ["agents", "gitops"] {
            w.add_project(group, name, root);
        }
        for (name, level) in [("maintainer", MAINTAINER), ("developer", DEVELOPER)] {
            let id = w.add_user(name, name, false, false);
            w.group_mut(group).map(|g| g.members.insert(id, level));
        }
        w
    }

    pub fn add_user(&mut self, username: &str, name: &str, admin: bool, bot: bool) -> u64 {
        let id = Ids::bump(&mut self.ids.user);
        self.users.push(User {
            id,
            username: username.to_owned(),
            name: name.to_owned(),
            email: format!("{username}@sandbox.gitlab.test"),
            admin,
            bot,
            created_at: now_iso(),
        });
        id
    }

    fn add_group(&mut self, path: &str, owner: u64) -> u64 {
        let id = Ids::bump(&mut self.ids.group);
        self.groups.push(Group {
            id,
            name: path.to_owned(),
            path: path.to_owned(),
            created_at: now_iso(),
            members: BTreeMap::from([(owner, OWNER)]),
            variables: Vec::new(),
        });
        id
    }

    fn add_project(&mut self, group_id: u64, path: &str, author: u64) -> u64 {
        let id = Ids::bump(&mut self.ids.project);
        let user = self.user(author).cloned();
        let (author_name, author_email) = user.map(|u| (u.name, u.email)).unwrap_or_default();
        let repo = Repository::initial("main", &author_name, &author_email, path);
        self.projects.push(Project {
            id,
            name: path.to_owned(),
            path: path.to_owned(),
            group_id,
            created_at: now_iso(),
            default_branch: "main".to_owned(),
            members: BTreeMap::new(),
            repo,
            deploy_keys: Vec::new(),
            variables: Vec::new(),
            terraform_states: BTreeMap::new(),
        });
        id
    }

    /// Mints a personal access token for `user_id` and returns its value.
    pub fn add_personal_token(&mut self, user_id: u64, name: &str) -> String {
        let value = new_token_value("glpat-", 15);
        let id = Ids::bump(&mut self.ids.personal_token);
        self.personal_tokens.push(PersonalToken {
            id,
            user_id,
            name: name.to_owned(),
            token_hash: hash_token(&value),
            scopes: vec!["api".to_owned()],
            created_at: now_iso(),
            expires_at: None,
            revoked: false,
        });
        value
    }

    pub fn next_agent_id(&mut self) -> u64 {
        Ids::bump(&mut self.ids.agent)
    }
    pub fn next_agent_token_id(&mut self) -> u64 {
        Ids::bump(&mut self.ids.agent_token)
    }
    /// The id the next deploy key will get; commit it by storing it in `ids.deploy_key`
    /// once validation has passed, so failed creates consume no id.
    pub fn next_deploy_key_id_peek(&self) -> u64 {
        self.ids.deploy_key + 1
    }
    pub fn next_access_token_id(&mut self) -> u64 {
        Ids::bump(&mut self.ids.access_token)
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }
    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }
    pub fn group_mut(&mut self, id: u64) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.id == id)
    }
    pub fn fleet_group_id(&self) -> Option<u64> {
        self.groups.iter().find(|g| g.path == "fleet").map(|g| g.id)
    }

    pub fn full_path(&self, project: &Project) -> String {
        let group = self.group(project.group_id).map_or("", |g| g.path.as_str());
        format!("{group}/{}", project.path)
    }

    /// Resolves a token value to a caller; `None` when unknown, revoked or expired.
    pub fn authenticate(&self, token_value: &str) -> Option<Caller> {
        let hash = hash_token(token_value);
        let today = today();
        let live = |revoked: bool, expires: &Option<String>| {
            !revoked && expires.as_ref().is_none_or(|e| e.as_str() > today.as_str())
        };
        if let Some(t) = self.personal_tokens.iter().find(|t| t.token_hash == hash) {
            let user = self.user(t.user_id)?;
            return live(t.revoked, &t.expires_at).then(|| Caller {
                user_id: user.id,
                scopes: t.scopes.clone(),
            });
        }
        let t = self.access_tokens.iter().find(|t| t.token_hash == hash)?;
        live(t.revoked, &t.expires_at).then(|| Caller {
            user_id: t.user_id,
            scopes: t.scopes.clone(),
        })
    }

    /// The caller's effective access level on a project; `None` means it cannot see it.
    pub fn access_level(&self, caller: &Caller, project: &Project) -> Option<u32> {
        let user = self.user(caller.user_id)?;
        if user.admin {
            return Some(OWNER);
        }
        let group = self
            .group(project.group_id)
            .and_then(|g| g.members.get(&user.id).copied());
        let direct = project.members.get(&user.id).copied();
        // Level 0 is GitLab's "No access": such a member cannot even see the project.
        group.max(direct).filter(|level| *level > 0)
    }

    pub fn group_level(&self, caller: &Caller, group: &Group) -> Option<u32> {
        let user = self.user(caller.user_id)?;
        if user.admin {
            return Some(OWNER);
        }
        group
            .members
            .get(&user.id)
            .copied()
            .filter(|level| *level > 0)
    }

    pub(crate) fn find_project_index(&self, id: &str) -> Option<usize> {
        if let Ok(n) = id.parse::<u64>() {
            return self.projects.iter().position(|p| p.id == n);
        }
        self.projects
            .iter()
            .position(|p| self.full_path(p).eq_ignore_ascii_case(id))
    }

    /// Looks a project up by numeric id or full path for `caller`, requiring `min_level`.
    /// Invisible projects are 404 (GitLab never confirms their existence); too low a role 403.
    pub fn project_index(&self, caller: &Caller, id: &str, min_level: u32) -> ApiResult<usize> {
        let index = self
            .find_project_index(id)
            .ok_or_else(|| ApiError::not_found("Project"))?;
        let level = self
            .access_level(caller, &self.projects[index])
            .ok_or_else(|| ApiError::not_found("Project"))?;
        if level < min_level {
            return Err(ApiError::forbidden());
        }
        Ok(index)
    }

    pub fn project(&self, caller: &Caller, id: &str, min_level: u32) -> ApiResult<&Project> {
        let index = self.project_index(caller, id, min_level)?;
        Ok(&self.projects[index])
    }

    pub fn project_mut(
        &mut self,
        caller: &Caller,
        id: &str,
        min_level: u32,
    ) -> ApiResult<&mut Project> {
        let index = self.project_index(caller, id, min_level)?;
        Ok(&mut self.projects[index])
    }

    /// The CI/CD variables of a project, or of a group when `group` is set, for a caller
    /// with at least `min_level` there.
    pub fn variables(
        &self,
        caller: &Caller,
        group: bool,
        id: &str,
        min_level: u32,
    ) -> ApiResult<&Vec<Variable>> {
        if group {
            let index = self.group_index(caller, id, min_level)?;
            return Ok(&self.groups[index].variables);
        }
        Ok(&self.project(caller, id, min_level)?.variables)
    }

    /// [`Self::variables`], to change.
    pub fn variables_mut(
        &mut self,
        caller: &Caller,
        group: bool,
        id: &str,
        min_level: u32,
    ) -> ApiResult<&mut Vec<Variable>> {
        if group {
            let index = self.group_index(caller, id, min_level)?;
            return Ok(&mut self.groups[index].variables);
        }
        Ok(&mut self.project_mut(caller, id, min_level)?.variables)
    }

    fn group_index(&self, caller: &Caller, id: &str, min_level: u32) -> ApiResult<usize> {
        let index = self
            .groups
            .iter()
            .position(|g| g.id.to_string() == id || g.path.eq_ignore_ascii_case(id))
            .ok_or_else(|| ApiError::not_found("Group"))?;
        let level = self
            .group_level(caller, &self.groups[index])
            .ok_or_else(|| ApiError::not_found("Group"))?;
        if level < min_level {
            return Err(ApiError::forbidden());
        }
        Ok(index)
    }

    pub fn agent_index(&self, project_id: u64, agent_id: &str) -> ApiResult<usize> {
        let id: u64 = agent_id
            .parse()
            .map_err(|_| super::http::invalid_param("agent_id"))?;
        self.agents
            .iter()
            .position(|a| a.id == id && a.project_id == project_id)
            .ok_or_else(ApiError::record_not_found)
    }

    pub fn active_agent_tokens(&self, agent_id: u64) -> impl Iterator<Item = &AgentToken> {
        self.agent_tokens
            .iter()
            .filter(move |t| t.agent_id == agent_id && !t.revoked)
    }
}

pub(crate) fn role_name(level: u32) -> &'static str {
    match level {
        GUEST => "guest",
        REPORTER => "reporter",
        DEVELOPER => "developer",
        MAINTAINER => "maintainer",
        OWNER => "owner",
        _ => "unknown",
    }
}
