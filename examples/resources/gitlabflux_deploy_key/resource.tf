# GitLab's SSH host keys, pinned: fetch them once from your instance's documentation (for
# gitlab.com: docs.gitlab.com/user/gitlab_com/#ssh-known_hosts-entries), never by scanning.
variable "gitlab_known_hosts" {
  type = string
}

# Flux clones fleet/gitops with a read-only deploy key whose private half exists only in the
# Secret flux-system/flux-system. Every 90 days (or when the trigger changes) a new key is
# added and written to the Secret, the GitRepository reconciles with it, and only then is the
# old key deleted.
resource "gitlabflux_deploy_key" "flux" {
  project     = "fleet/gitops"
  title       = "flux prod"
  known_hosts = var.gitlab_known_hosts

  kubernetes_secret = {
    namespace = "flux-system"
    name      = "flux-system"
  }
  reconcile = [{ kind = "GitRepository", namespace = "flux-system", name = "flux-system" }]

  expires_in = "8760h"
  rotation = {
    rotate_after    = "2160h"
    trigger         = "2026-12"
    confirm_timeout = "5m"
  }
}
